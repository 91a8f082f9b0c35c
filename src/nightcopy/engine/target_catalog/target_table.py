"""What the target holds under a listed table's name: the table and what depends on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nightcopy.engine.grants import RelationGrants
from nightcopy.engine.table_model import IndexDef

if TYPE_CHECKING:
    from nightcopy.engine.target_catalog.matviews import MatviewDef


@dataclass(frozen=True)
class UserCode:
    """One object on the table that runs code during a load: what it is and what it calls."""
    kind: str   # trigger | index | check constraint | generated column | domain check | ...
    name: str   # the object's name (an index's name is what the swap matches on)
    calls: str  # the function it calls (regprocedure text), or the trigger's function

    def describe(self) -> str:
        if self.kind == "trigger":
            return f"trigger {self.name} (runs {self.calls})"
        return f"{self.kind} {self.name} calls {self.calls}"


@dataclass
class ViewDef:
    oid: int
    qualified: str
    definition: str
    options: list[str]
    owner: str
    grants: RelationGrants  # table-level ones only (see views.read_views)
    comment: str | None
    column_comments: list[tuple[str, str]]
    depth: int


@dataclass
class TargetTable:
    oid: int
    kind: str
    owner: str
    grants: RelationGrants = field(default_factory=RelationGrants)
    views: list[ViewDef] = field(default_factory=list)
    matviews: list[MatviewDef] = field(default_factory=list)  # in dependency order (matviews.py)
    blockers: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # target-side objects the swap cannot keep
    # Statements to run on the new table: head + table name + tail (tail None: head alone).
    carry_over: list[tuple[str, str | None]] = field(default_factory=list)
    publications: list[str] = field(default_factory=list)
    incoming_fks: list[tuple[str, str]] = field(default_factory=list)  # (table, constraint)
    # Its own foreign keys into tables of this copy (itself included): re-added from the
    # source's definitions after all tables are in (foreign_keys), so a truncate drops them.
    outgoing_fks: list[str] = field(default_factory=list)
    owned_sequences: list[str] = field(default_factory=list)
    referenced_tables: list[str] = field(default_factory=list)  # its foreign keys point there
    indexes: list[IndexDef] = field(default_factory=list)  # not owned by a constraint
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, type) non-generated
    leaves: list[str] = field(default_factory=list)
    partition_oids: list[int] = field(default_factory=list)
    # Triggers, and expressions calling functions that are not built-in (user_code.py): what a
    # load into this table would run as the worker's role.
    user_code: list[UserCode] = field(default_factory=list)

    @property
    def relation_oids(self) -> list[int]:
        """The table and all its partitions."""
        return [self.oid, *self.partition_oids]
