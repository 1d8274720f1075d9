"""gpuctl: serve an open LLM on a rented GPU, benchmark it, and account for every dollar."""

__version__ = "0.1.0"
