"""Reading what an engine reports about itself: its Prometheus ``/metrics`` in vLLM's, SGLang's or TGI's names."""
