"""The caller's address ranges: what a provider firewall admits to a deployment (SSH, the engine port).

From ``aws.caller_cidr`` / GPUCTL_CALLER_CIDR (comma-separated), else this machine's public IP as
AWS's checkip service sees it. gpuctl never opens a port to everyone by itself: if the address
cannot be learnt, the launch stops before it creates anything.
"""

from __future__ import annotations

import ipaddress

from gpuctl.credentials import credential_value
from gpuctl.errors import UsageError

#: where the caller's public address is learnt when no ``aws.caller_cidr`` is set
CHECKIP_URL = "https://checkip.amazonaws.com"
CHECKIP_TIMEOUT = 5.0


def caller_cidrs(purpose: str) -> list[str]:
    """The configured ranges, else this machine's public IP; ``purpose`` names the firewall in errors."""
    import urllib.request

    configured = credential_value("aws.caller_cidr")
    if configured is not None:
        cidrs = [_cidr(part.strip()) for part in configured.split(",") if part.strip()]
        if cidrs:
            return cidrs
    try:
        with urllib.request.urlopen(CHECKIP_URL, timeout=CHECKIP_TIMEOUT) as answer:
            text = answer.read(64).decode("ascii").strip()
        return [str(ipaddress.ip_network(text))]
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot learn this machine's public IP address for {purpose} ({CHECKIP_URL}: {exc})",
                         "set it: export GPUCTL_CALLER_CIDR=203.0.113.7/32 (or 'gpuctl config set aws.caller_cidr "
                         "CIDR'); gpuctl does not open SSH to the whole internet by itself") from None


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise UsageError(f"aws.caller_cidr: '{text}' is not an IP address or CIDR range",
                         "e.g. 203.0.113.7/32 or 203.0.113.0/24; separate several with commas") from None
