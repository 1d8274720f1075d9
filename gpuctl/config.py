"""The user config file: ``gpuctl config get|set|unset|list`` over ``config.yaml`` (mode 0600)."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuctl.envvars import Env
from gpuctl.errors import ConfigError, UsageError
from gpuctl.fsutil import atomic_write
from gpuctl.paths import config_dir
from gpuctl.yamlio import load_yaml

CONFIG_FILE_NAME = "config.yaml"


@dataclass(frozen=True)
class ConfigKey:
    """A setting gpuctl understands. ``env`` wins over the file when set."""

    name: str
    description: str
    secret: bool = False
    env: str | None = None
    kind: type = str


KEYS: dict[str, ConfigKey] = {
    k.name: k
    for k in (
        ConfigKey("runpod.api_key", "RunPod API key", secret=True, env=Env.RUNPOD_API_KEY),
        ConfigKey("lambda.api_key", "Lambda Cloud API key", secret=True, env=Env.LAMBDA_API_KEY),
        ConfigKey("hf.token", "Hugging Face token (gated models)", secret=True, env=Env.HF_TOKEN),
        ConfigKey("aws.profile", "AWS profile from ~/.aws/config", env=Env.AWS_PROFILE),
        ConfigKey("aws.region", "default AWS region", env="AWS_DEFAULT_REGION"),
        ConfigKey("aws.ami_type", "Deep Learning AMI type of AWS launches (default "
                  "base-oss-nvidia-driver-gpu-ubuntu-22.04)"),
        ConfigKey("aws.caller_cidr", "comma-separated CIDRs allowed to reach AWS and Lambda instances (SSH, and "
                  "the engine with --public); default: this machine's public IP", env=Env.CALLER_CIDR),
        ConfigKey("prices.timeout", "seconds to wait for each provider's prices", kind=float),
        ConfigKey("prices.max_age", "seconds a cached price answer stays fresh", kind=float),
    )
}


def config_key(name: str) -> ConfigKey:
    """The known key ``name``; a typo gets exit 2 with the closest names."""
    try:
        return KEYS[name]
    except KeyError:
        close = difflib.get_close_matches(name, KEYS, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known keys: {', '.join(KEYS)}"
        raise UsageError(f"unknown config key '{name}'", hint) from None


def effective_value(name: str, stored: dict[str, Any] | None = None) -> tuple[Any, str | None]:
    """The value of ``name`` gpuctl uses and its origin: ``"env"`` (the key's variable wins), ``"config"`` (the
    user config file, ``stored`` when already loaded), or ``None`` when unset."""
    spec = config_key(name)
    if spec.env and os.environ.get(spec.env):
        return os.environ[spec.env], "env"
    value = (stored if stored is not None else UserConfig().load()).get(name)
    return (value, "config") if value not in (None, "") else (None, None)


def redact(value: str | None) -> str | None:
    """How a secret is shown anywhere gpuctl prints it."""
    if not value:
        return value
    return "****" + value[-4:] if len(value) >= 16 else "****"


class UserConfig:
    """The YAML mapping of config keys to values in the user config dir."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / CONFIG_FILE_NAME

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        import yaml

        try:
            data = load_yaml(self.path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path}: not valid YAML ({exc.__class__.__name__})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: expected a mapping of keys to values")
        return {str(k): v for k, v in data.items()}

    def get(self, name: str) -> Any:
        config_key(name)
        return self.load().get(name)

    def set(self, name: str, raw: str) -> Any:
        key = config_key(name)
        try:
            value = key.kind(raw)
        except ValueError:
            raise UsageError(f"config key '{name}' takes a {key.kind.__name__}, not '{raw}'") from None
        data = self.load()
        data[name] = value
        self._write(data)
        return value

    def unset(self, name: str) -> bool:
        config_key(name)
        data = self.load()
        if name not in data:
            return False
        del data[name]
        self._write(data)
        return True

    def _write(self, data: dict[str, Any]) -> None:
        import yaml

        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        atomic_write(self.path, yaml.safe_dump(data, sort_keys=True), mode=0o600)
