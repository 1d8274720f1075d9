"""The measured sweep (``gpuctl bench --sweep``): rent the best offer of each GPU asked, bench it, tear it down.

``plan`` picks one candidate offer per GPU (the cheapest per token by estimate that meets the SLO)
and prices the whole sweep before anything is rented; ``run`` deploys, benches and tears down the
candidates side by side (bounded, every one torn down on any failure or interruption, never
launching past the budget); ``results`` ranks them by measured dollars per million output tokens
at the SLO, each beside its estimate.
"""
