"""pydantic models for every structure that crosses a boundary (CLI, providers, state, hosts)."""
