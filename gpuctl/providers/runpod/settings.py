"""The settings this provider reads (``gpuctl config``), kept apart from the API client so that listing the
installed providers does not load the client's models."""

from __future__ import annotations

from gpuctl.config import ConfigKey
from gpuctl.envvars import Env

#: the account's API key: what every call needs
API_KEY = ConfigKey("runpod.api_key", "RunPod API key", secret=True, env=Env.RUNPOD_API_KEY, credential=True)
