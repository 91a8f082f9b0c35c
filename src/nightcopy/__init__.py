"""nightcopy: copy chosen PostgreSQL tables to a reporting database, atomically and in parallel."""

__version__ = "0.1.0"
