"""AWS adapters (boto3): SSM, Logs Insights, Step Functions."""
