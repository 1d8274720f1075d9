"""User-level directories (config, cache), overridable through the environment."""

from __future__ import annotations

import os
from pathlib import Path

from gpuctl.envvars import Env


def config_dir() -> Path:
    """Directory of the user config file and user recipes (``GPUCTL_CONFIG_DIR`` overrides)."""
    override = os.environ.get(Env.CONFIG_DIR)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("gpuctl", appauthor=False))


def cache_dir() -> Path:
    """Directory of cached provider answers (``GPUCTL_CACHE_DIR`` overrides)."""
    override = os.environ.get(Env.CACHE_DIR)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gpuctl", appauthor=False))
