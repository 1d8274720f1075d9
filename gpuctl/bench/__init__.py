"""Benchmarking OpenAI-compatible endpoints: the shippable load generator, cost arithmetic, the runner."""
