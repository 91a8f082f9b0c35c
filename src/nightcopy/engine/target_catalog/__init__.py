"""Reading the target catalog: what already stands under a table's name there and what depends
on it (inspection, one reader module per aspect), for the swap and truncate strategies."""
