"""Kubernetes object names: what the API server accepts, derived from gpuctl's names."""

from __future__ import annotations

import re

from gpuctl.errors import UsageError

#: RFC 1035 label: what a Service name must be (and so every name gpuctl derives from the base)
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: RFC 1123 label: a namespace
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: leaves room in 63 characters for the suffixes added to the base (``-hf-cache``, and the
#: LeaderWorkerSet's pod names ``<base>-lws-<group>-<index>``)
MAX_BASE = 40
_HINT = f"use 1-{MAX_BASE} lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"


def base_name(text: str) -> str:
    """A valid base name from a deployment or model name ('hf:Qwen/Qwen2.5-7B' -> 'qwen2-5-7b')."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.rsplit("/", 1)[-1].removeprefix("hf:").lower()).strip("-")
    if not slug[:1].isalpha():
        slug = f"m-{slug}"  # a Service name must start with a letter
    return slug[:MAX_BASE].rstrip("-")


def check_base_name(name: str) -> str:
    """``name`` if every object name derived from it is valid; exit 2 otherwise."""
    if len(name) > MAX_BASE or not DNS1035_LABEL.match(name):
        raise UsageError(f"'{name}' cannot name Kubernetes objects", _HINT)
    return name


def check_namespace(namespace: str) -> str:
    if len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
        raise UsageError(f"'{namespace}' is not a valid namespace",
                         "use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit")
    return namespace
