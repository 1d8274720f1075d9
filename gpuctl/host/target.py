"""Parsing ``--host``: ``local``, ``addr``, ``user@addr``, ``user@addr:port``, ``user@[v6addr]:port``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.errors import UsageError

LOCAL = "local"
# A host name, an ~/.ssh/config alias, an IPv4 address or (bracketed or not) an IPv6 address.
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:%-]+$")
_FORM_HINT = "use user@addr[:port], e.g. ubuntu@203.0.113.7:22, or 'local'"


class HostTarget(BaseModel):
    """Where to deploy: this machine's own docker engine, or an SSH destination."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["local", "ssh"]
    host: str | None = None
    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)

    def __str__(self) -> str:
        if self.kind == "local":
            return LOCAL
        host = f"[{self.host}]" if self.host and ":" in self.host and self.port else self.host
        text = f"{self.user}@{host}" if self.user else str(host)
        return f"{text}:{self.port}" if self.port else text


def parse_target(text: str) -> HostTarget:
    """Parse a ``--host`` value; anything malformed is a UsageError (exit 2) naming the problem."""
    raw = text.strip()
    if raw == LOCAL:
        return HostTarget(kind="local")
    user, at, rest = raw.rpartition("@")
    if at and not user:
        raise UsageError(f"--host '{text}': empty user name before '@'", _FORM_HINT)
    host, port = _split_host_port(text, rest)
    if not host or not _HOST_RE.match(host):
        raise UsageError(f"--host '{text}': '{host}' is not a host name or address", _FORM_HINT)
    if user and not re.match(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$", user):
        raise UsageError(f"--host '{text}': '{user}' is not a valid user name", _FORM_HINT)
    return HostTarget(kind="ssh", host=host, user=user or None, port=port)


def _split_host_port(text: str, rest: str) -> tuple[str, int | None]:
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise UsageError(f"--host '{text}': unbalanced brackets around the address", _FORM_HINT)
        return host, _port(text, tail[1:]) if tail else None
    if rest.count(":") > 1:  # a bare IPv6 address carries no port
        return rest, None
    host, colon, port = rest.partition(":")
    return host, _port(text, port) if colon else None


def _port(text: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise UsageError(f"--host '{text}': port '{value}' is not a number from 1 to 65535", _FORM_HINT)
    return int(value)
