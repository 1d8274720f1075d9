"""Lambda Cloud (API v1): ``provider`` (the plugin class), ``client`` (the API), ``mapping`` (answers as gpuctl's
models), ``launch`` (tags, SSH key, firewall ruleset), ``caches`` (a filesystem per region)."""
