"""AWS EC2 (boto3): ``provider`` (the plugin class), ``client`` (sessions, settings, error mapping),
``mapping`` and ``listing`` (the price listing), ``launch`` (instances), ``caches`` (S3 weights cache),
``botocore_models`` (the cut-down EC2 model the listing loads)."""
