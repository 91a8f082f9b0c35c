"""AWS adapters: every boto3 call (SSM, S3 reports, Logs Insights, Step Functions), and one
mapping of their failures to nightcopy errors (errors.py)."""
