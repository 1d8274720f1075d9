"""Where credentials come from: the environment first, then the user config file.

Only presence and origin ever leave this module's callers; values go straight to the client that
needs them.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from pydantic import BaseModel

from gpuctl.config import UserConfig, config_key, effective_value


class CredentialStatus(BaseModel):
    key: str
    present: bool
    source: str | None = None  # "env RUNPOD_API_KEY", "config runpod.api_key", "aws profile default"
    hint: str | None = None


def credential_value(key: str, config: UserConfig | None = None) -> str | None:
    """The value of credential ``key``: env var if set, otherwise the user config file."""
    value, _origin = effective_value(key, (config or UserConfig()).load())
    return None if value is None else str(value)


def resolve_credential(key: str, config: UserConfig | None = None) -> CredentialStatus:
    """Presence and origin of credential ``key``, with a hint saying how to set it when missing."""
    spec = config_key(key)
    _value, origin = effective_value(key, (config or UserConfig()).load())
    if origin == "env":
        return CredentialStatus(key=key, present=True, source=f"env {spec.env}")
    if origin == "config":
        return CredentialStatus(key=key, present=True, source=f"config {key}")
    how = f"export {spec.env}=... or " if spec.env else ""
    return CredentialStatus(key=key, present=False, hint=f"{how}gpuctl config set {key} VALUE")


_AWS_ENV_SOURCES = (
    ("AWS_ACCESS_KEY_ID", "env AWS_ACCESS_KEY_ID"),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "env AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "env AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "env AWS_WEB_IDENTITY_TOKEN_FILE"),
)


def aws_profile_name(config: UserConfig | None = None) -> str | None:
    """The AWS profile gpuctl should use: ``AWS_PROFILE``, then ``aws.profile`` from the config file."""
    value, _origin = effective_value("aws.profile", (config or UserConfig()).load())
    return None if value is None else str(value)


def resolve_aws_credentials(config: UserConfig | None = None) -> CredentialStatus:
    """Presence of AWS credentials along the standard chain, read offline.

    boto3's own resolver would fall through to the instance metadata service, a network call;
    this check only reads the environment and the shared files, which is what a laptop has.
    """
    for var, source in _AWS_ENV_SOURCES:
        if os.environ.get(var):
            return CredentialStatus(key="aws", present=True, source=source)
    profile = aws_profile_name(config) or "default"
    creds_file = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")).expanduser()
    config_file = Path(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")).expanduser()
    for path, section in ((creds_file, profile), (config_file, _config_section(profile))):
        if _has_section(path, section):
            return CredentialStatus(key="aws", present=True, source=f"aws profile {profile}")
    return CredentialStatus(
        key="aws",
        present=False,
        hint="export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run 'aws configure'",
    )


def _config_section(profile: str) -> str:
    return "default" if profile == "default" else f"profile {profile}"


def _has_section(path: Path, section: str) -> bool:
    if not path.is_file():
        return False
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return False
    return parser.has_section(section)
