"""The copy engine: a library (psycopg2 only; no click, rich or boto3)."""
