"""What the aspect readers fill in: the listed tables' definitions and their partitions."""

from __future__ import annotations

from dataclasses import dataclass, field

from nightcopy.engine.table_model import PartitionDef, TableDef


@dataclass
class DefinitionSet:
    tables: dict[int, TableDef]  # by the listed table's oid
    partitions: dict[int, PartitionDef] = field(default_factory=dict)  # by the partition's oid

    @property
    def table_oids(self) -> list[int]:
        return list(self.tables)

    @property
    def relation_oids(self) -> list[int]:
        """The tables and all their partitions (filled by the partitions reader, read first)."""
        return [*self.tables, *self.partitions]
