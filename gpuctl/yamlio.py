"""YAML reading through libyaml when PyYAML was built with it (about 10x faster than pure Python)."""

from __future__ import annotations

from typing import Any


def load_yaml(text: str) -> Any:
    """Parse ``text`` safely (no Python object tags); raises ``yaml.YAMLError`` on bad input."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
