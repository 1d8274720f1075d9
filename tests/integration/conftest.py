"""Fixtures of the fault tests (tests/integration/fault_kit.py)."""

from tests.integration.fault_kit import healthy_engine, runpod_world, state_dir

__all__ = ["healthy_engine", "runpod_world", "state_dir"]
