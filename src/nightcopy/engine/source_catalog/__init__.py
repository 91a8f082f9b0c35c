"""Reading the source catalog: which tables a list means (listed_tables), each table's full
definition (definitions, one reader module per aspect), the types they need (types)."""
