"""Where credentials come from: the environment first, then the user config file.

Only presence and origin ever leave this module's callers; values go straight to the client that
needs them.
"""

from __future__ import annotations

from pydantic import BaseModel

from gpuctl.config import ConfigKey, UserConfig, core_key, effective_value


class CredentialStatus(BaseModel):
    key: str
    present: bool
    source: str | None = None  # "env RUNPOD_API_KEY", "config runpod.api_key", "aws profile default"
    hint: str | None = None


def credential_value(key: ConfigKey | str, config: UserConfig | None = None) -> str | None:
    """The value of ``key`` (a name means one of gpuctl's own keys): env var if set, otherwise the config file."""
    value, _origin = effective_value(key, (config or UserConfig()).load())
    return None if value is None else str(value)


def resolve_credential(key: ConfigKey | str, config: UserConfig | None = None) -> CredentialStatus:
    """Presence and origin of ``key``, with a hint saying how to set it when missing."""
    spec = core_key(key) if isinstance(key, str) else key
    _value, origin = effective_value(spec, (config or UserConfig()).load())
    if origin == "env":
        return CredentialStatus(key=spec.name, present=True, source=f"env {spec.env}")
    if origin == "config":
        return CredentialStatus(key=spec.name, present=True, source=f"config {spec.name}")
    return CredentialStatus(key=spec.name, present=False, hint=set_hint(spec))


def set_hint(key: ConfigKey) -> str:
    """How the user sets ``key``."""
    how = f"export {key.env}=... or " if key.env else ""
    return f"{how}gpuctl config set {key.name} VALUE"
