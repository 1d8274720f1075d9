"""Tiny Cloud for gpuctl: ``provider`` (the plugin class), ``client`` (the API), ``catalog.yaml`` (its GPUs)."""
