"""Provider plugins that fail in every way a plugin can, each named after how (see pyproject.toml).

They declare every capability the commands ask for, so each command meets each failure; their
"instances" never exist. ``QuietProvider`` behaves: it has a config key of its own and a catalog.
"""

from __future__ import annotations

import time

from gpuctl.config import ConfigKey
from gpuctl.credentials import CredentialStatus
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability

NOT_A_PROVIDER = 42
EVERYTHING = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE, Capability.WEIGHTS_CACHE})
METHODS = ("offers", "get", "terminate", "list_by_tag", "weights_caches", "doctor_checks")


class _Declared(Provider):
    capabilities = EVERYTHING

    def credentials(self) -> CredentialStatus:
        return CredentialStatus(key="", present=True, source="none needed")

    def offers(self, query):
        return []


class BadPropertyProvider(_Declared):
    name = "badprop"

    @property
    def display_name(self) -> str:  # type: ignore[override]
        raise RuntimeError("display_name exploded")


class BadInitProvider(_Declared):
    name = "badinit"
    display_name = "Bad Init"

    def __init__(self) -> None:
        raise RuntimeError("cannot start")


class BadCredentialsProvider(_Declared):
    name = "badcreds"
    display_name = "Bad Credentials"

    def credentials(self) -> CredentialStatus:
        raise KeyError("credentials")


def _every_method(behave):
    return {method: (lambda self, *args, _m=method, **kwargs: behave(_m)) for method in METHODS}


def _raise(method: str):
    raise RuntimeError(f"{method} exploded")


def _hang(method: str):
    time.sleep(3600)


def _garbage(method: str):
    return {"not": "what gpuctl asked for"}


RaisingProvider = type("RaisingProvider", (_Declared,), {"name": "raiser", "display_name": "Raiser",
                                                         **_every_method(_raise)})
HangingProvider = type("HangingProvider", (_Declared,), {"name": "hanger", "display_name": "Hanger",
                                                         "call_timeout": 1.0, **_every_method(_hang)})
GarbageProvider = type("GarbageProvider", (_Declared,), {"name": "garbage", "display_name": "Garbage",
                                                         **_every_method(_garbage)})


class QuietProvider(Provider):
    """Well-behaved: a key of its own (which once made every command refuse it) and snapshot prices."""

    name = "quiet"
    display_name = "Quiet GPUs"
    config_keys = (ConfigKey("quiet.api_key", "Quiet GPUs API key", secret=True, env="QUIET_API_KEY",
                             credential=True),)
    catalog_file = "catalog.yaml"

    def offers(self, query):
        return []
