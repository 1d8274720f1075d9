"""Errors of the host layer, each mapped onto one of gpuctl's documented exit codes."""

from __future__ import annotations

from gpuctl.errors import CredentialsError, ProviderError, UsageError


class HostError(ProviderError):
    """The host (not the provider's API) failed: unreachable, a command failed, docker missing."""

    default_hint = "check that the host is up and reachable ('gpuctl ssh NAME' opens a shell there)"


class HostCheckError(HostError):
    """The host is reachable but not fit to serve: wrong GPU, no driver, no NVIDIA container runtime."""

    default_hint = "pick another offer, or fix the host and run 'gpuctl up' again"


class UnknownHostKeyError(UsageError):
    """First contact with a host whose key nobody has vouched for yet (exit 2: the user must decide)."""

    def __init__(self, host: str, key_type: str, fingerprint: str) -> None:
        super().__init__(
            f"the host key of {host} is not known yet: {key_type} {fingerprint}",
            "compare the fingerprint with the one your provider shows, then pass --accept-host-key to pin it",
        )
        self.host = host
        self.key_type = key_type
        self.fingerprint = fingerprint


class HostKeyChangedError(CredentialsError):
    """The host presents a key other than the pinned one: never connect (possible interception)."""

    def __init__(self, host: str, key_type: str, fingerprint: str, expected_fingerprint: str) -> None:
        super().__init__(
            f"the host key of {host} changed: it now presents {key_type} {fingerprint}, "
            f"but {expected_fingerprint} is pinned",
            "if the host was rebuilt, remove its line from the known_hosts file that pins it "
            "(.gpuctl/ssh/known_hosts or ~/.ssh/known_hosts); otherwise someone may be intercepting",
        )
        self.host = host
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.expected_fingerprint = expected_fingerprint
