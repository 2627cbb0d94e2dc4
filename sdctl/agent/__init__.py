"""The queue agent: SQS -> runtime -> S3 + SNS. Runs beside each runtime container."""
