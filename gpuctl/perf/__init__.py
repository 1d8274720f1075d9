"""Performance estimates before anything is rented: tokens/s, time to first token, inter-token latency.

``gpuctl.perf.estimate.estimate`` answers for one model, GPU SKU, GPU count, precision, engine and
workload (docs/cost-per-token.md explains the model); ``gpuctl.perf.cost`` turns an estimate and a
price into dollars per million tokens and checks latency targets. Pure arithmetic on the catalog's
datasheet figures and ``gpuctl.fit``'s memory math: nothing here imports more than pydantic.
"""
