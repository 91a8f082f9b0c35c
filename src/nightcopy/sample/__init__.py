"""Sample data and embedded PostgreSQL servers, for the demo, tests and benchmark."""
