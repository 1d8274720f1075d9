"""The user config file: ``gpuctl config get|set|unset|list`` over ``config.yaml`` (mode 0600).

gpuctl's own settings are ``CORE_KEYS``; every provider declares its own (``Provider.config_keys``),
so the keys ``gpuctl config`` knows are these plus those of every installed provider
(``ProviderRegistry.config_keys``). Code reading a setting holds its ``ConfigKey``, never just a name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuctl.envvars import Env
from gpuctl.errors import ConfigError, NotFoundError, UsageError
from gpuctl.fsutil import atomic_write, read_text_file
from gpuctl.paths import config_dir
from gpuctl.yamlio import load_yaml

CONFIG_FILE_NAME = "config.yaml"


@dataclass(frozen=True)
class ConfigKey:
    """A setting: its dotted name, what it is for, and where its value comes from (``env`` wins over the file).

    ``secret`` values are shown redacted and scrubbed from logs; ``credential`` marks what a provider
    cannot work without (the default ``Provider.credentials`` reports it missing when unset).
    """

    name: str
    description: str
    secret: bool = False
    env: str | None = None
    kind: type = str
    credential: bool = False

    def parse(self, raw: str) -> Any:
        """``raw`` as this key's kind; a bad value is exit 2 naming the key."""
        try:
            return self.kind(raw)
        except ValueError:
            raise UsageError(f"config key '{self.name}' takes a {self.kind.__name__}, not '{raw}'") from None


HF_TOKEN = ConfigKey("hf.token", "Hugging Face token (gated models)", secret=True, env=Env.HF_TOKEN)
PRICES_TIMEOUT = ConfigKey("prices.timeout", "seconds to wait for each provider's prices", kind=float)
PRICES_MAX_AGE = ConfigKey("prices.max_age", "seconds a cached price answer stays fresh", kind=float)

#: gpuctl's own settings; the providers add theirs
CORE_KEYS: tuple[ConfigKey, ...] = (HF_TOKEN, PRICES_TIMEOUT, PRICES_MAX_AGE)


def core_key(name: str) -> ConfigKey:
    """One of gpuctl's own keys (``hf.token``, ``prices.timeout``, ...), by name."""
    return find_key(name, {key.name: key for key in CORE_KEYS})


def find_key(name: str, keys: Mapping[str, ConfigKey], *, unknown_hint: str | None = None) -> ConfigKey:
    """``keys[name]``; an unknown name is exit 3 with the closest known names (or ``unknown_hint``)."""
    try:
        return keys[name]
    except KeyError:
        close = difflib.get_close_matches(name, keys, n=3)
        hint = unknown_hint or (f"did you mean {', '.join(close)}?" if close
                                else "'gpuctl config list' shows every known key")
        raise NotFoundError(f"unknown config key '{name}'", hint) from None


def effective_value(key: ConfigKey | str, stored: dict[str, Any] | None = None) -> tuple[Any, str | None]:
    """The value of ``key`` gpuctl uses and its origin: ``"env"`` (the key's variable wins), ``"config"`` (the
    user config file, ``stored`` when already loaded), or ``None`` when unset. A name means a core key."""
    spec = core_key(key) if isinstance(key, str) else key
    if spec.env and os.environ.get(spec.env):
        return os.environ[spec.env], "env"
    value = (stored if stored is not None else UserConfig().load()).get(spec.name)
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
            data = load_yaml(read_text_file(self.path)) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path}: not valid YAML ({exc.__class__.__name__})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: expected a mapping of keys to values")
        return {str(k): v for k, v in data.items()}

    def get(self, key: ConfigKey) -> Any:
        return self.load().get(key.name)

    def set(self, key: ConfigKey, raw: str) -> Any:
        value = key.parse(raw)
        data = self.load()
        data[key.name] = value
        self._write(data)
        return value

    def unset(self, name: str) -> bool:
        """Remove ``name`` from the file (any name: a key nobody declares any more can still be removed)."""
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
