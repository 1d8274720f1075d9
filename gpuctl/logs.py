"""Logging for ``-v``: to stderr, with every known secret value scrubbed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuctl.config import ConfigKey

SECRET_MASK = "****"


class SecretFilter(logging.Filter):
    """Replaces each known secret value in a record's final message with a mask."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, SECRET_MASK)
        record.msg, record.args = message, None
        return True


def known_secrets(keys: Iterable[ConfigKey]) -> list[str]:
    """Values of every secret key of ``keys``, from the environment and the user config file."""
    from gpuctl.config import UserConfig

    stored = UserConfig().load()
    values = []
    for key in keys:
        if key.secret:
            values += [os.environ.get(key.env or "", ""), str(stored.get(key.name) or "")]
    values += [os.environ.get("AWS_SECRET_ACCESS_KEY", ""), os.environ.get("AWS_SESSION_TOKEN", "")]
    return values


#: marks the handler configure_logging added, so a second call replaces it
_OURS = "_gpuctl_handler"


def configure_logging(verbosity: int, keys: Callable[[], Iterable[ConfigKey]]) -> None:
    """``-v`` shows gpuctl's info messages, ``-vv`` debug messages from gpuctl and its libraries; the value of
    every secret of ``keys()`` (gpuctl's and every installed provider's, asked only here) is scrubbed."""
    root = logging.getLogger()
    if verbosity <= 0:
        # without -v, libraries (paramiko's transport thread above all) print nothing: with no handler at all,
        # Python's last-resort handler would write their warnings and tracebacks raw onto stderr
        if not root.handlers:
            root.addHandler(logging.NullHandler())
        return
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:  # -v again after the command
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(SecretFilter(known_secrets(keys())))
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger("gpuctl").setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
