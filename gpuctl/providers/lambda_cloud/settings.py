"""The settings this provider reads (``gpuctl config``), kept apart from the API client so that listing the
installed providers does not load the client's models."""

from __future__ import annotations

from gpuctl.config import ConfigKey
from gpuctl.envvars import Env

#: the account's API key: what every call needs
API_KEY = ConfigKey("lambda.api_key", "Lambda Cloud API key", secret=True, env=Env.LAMBDA_API_KEY, credential=True)
