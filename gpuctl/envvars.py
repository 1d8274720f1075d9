"""Every environment variable gpuctl reads, in one place (echoed in --help)."""

from __future__ import annotations


class Env:
    PROJECT_DIR = "GPUCTL_PROJECT_DIR"
    CONFIG_DIR = "GPUCTL_CONFIG_DIR"
    CACHE_DIR = "GPUCTL_CACHE_DIR"
    DEBUG = "GPUCTL_DEBUG"
    NO_COLOR = "NO_COLOR"
    #: answers yes to every confirmation, like -y (scripts, CI)
    YES = "GPUCTL_YES"

    RUNPOD_API_KEY = "RUNPOD_API_KEY"
    LAMBDA_API_KEY = "LAMBDA_API_KEY"
    HF_TOKEN = "HF_TOKEN"
    HF_ENDPOINT = "HF_ENDPOINT"
    OPENAI_API_KEY = "OPENAI_API_KEY"
    AWS_PROFILE = "AWS_PROFILE"

    RUNPOD_API_URL = "GPUCTL_RUNPOD_API_URL"
    #: where a pod's engine port is reached; {pod_id} and {port} are filled in
    RUNPOD_PROXY_URL = "GPUCTL_RUNPOD_PROXY_URL"
    LAMBDA_API_URL = "GPUCTL_LAMBDA_API_URL"
    AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
    CALLER_CIDR = "GPUCTL_CALLER_CIDR"


def truthy(value: str | None) -> bool:
    """Interpret an environment flag the way users expect ("1", "true", "yes", "on")."""
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}
