"""RunPod (REST v2): ``provider`` (the plugin class), ``client`` (the API), ``mapping`` (answers as gpuctl's
models), ``launch`` (the engine pod's request), ``caches`` (network volumes), ``seeding`` (the pod that fills one)."""
