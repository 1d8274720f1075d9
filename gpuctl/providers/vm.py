"""What the VM-style providers (a machine gpuctl reaches over SSH: Lambda, AWS) share.

- The caller's address ranges, what a provider firewall admits to a deployment (SSH, the engine
  port): from ``aws.caller_cidr`` / GPUCTL_CALLER_CIDR (comma-separated), else this machine's public
  IP as AWS's checkip service sees it. gpuctl never opens a port to everyone by itself: if the
  address cannot be learnt, the launch stops before it creates anything.
- The name of the project's SSH key at the provider, the same on every machine.
- The first-boot script (cloud-init user data) that arms the TTL watchdog.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress

from gpuctl.config import ConfigKey
from gpuctl.credentials import credential_value
from gpuctl.envvars import Env
from gpuctl.errors import UsageError

#: the setting every VM-style provider reads (its name predates Lambda's use of it)
CALLER_CIDR = ConfigKey("aws.caller_cidr", "comma-separated CIDRs allowed to reach AWS and Lambda instances (SSH, and "
                        "the engine with --public); default: this machine's public IP", env=Env.CALLER_CIDR)

#: where the caller's public address is learnt when no ``aws.caller_cidr`` is set
CHECKIP_URL = "https://checkip.amazonaws.com"
CHECKIP_TIMEOUT = 5.0


def caller_cidrs(purpose: str) -> list[str]:
    """The configured ranges, else this machine's public IP; ``purpose`` names the firewall in errors."""
    import urllib.request

    configured = credential_value(CALLER_CIDR)
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


def ssh_key_name(public_key: str) -> str:
    """``gpuctl-`` and the start of the key's SHA-256 fingerprint: one name per key, on every machine."""
    parts = public_key.split()
    try:
        blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
    except binascii.Error:
        blob = b""
    if not blob:
        raise UsageError("the SSH public key is not in OpenSSH format ('TYPE BASE64 [COMMENT]')")
    return "gpuctl-" + hashlib.sha256(blob).hexdigest()[:16]


def first_boot_script(name: str, expires: int, *, cache_dir: str | None = None) -> str:
    """Cloud-init user data arming the TTL watchdog of deployment ``name`` at first boot, so it holds even if
    gpuctl never connects.

    It then bootstraps the host (templates/bootstrap.sh), which makes sure the weights directory the
    fetcher and the engine get exists: ``cache_dir``, a mounted weights cache, else the host's own.
    It holds no secret: anything on the instance can read its user data. At the deadline the
    watchdog stops the engine and powers the VM off; a provider that bills a powered-off machine
    (Lambda) needs gpuctl itself to terminate it (its ``gpuctl-expires-at`` tag says when).
    """
    from gpuctl.models.engine import HOST_CACHE_DIR, container_name
    from gpuctl.templating import aws_user_data

    return aws_user_data(deadline=expires, container=container_name(name), cache_dir=cache_dir or HOST_CACHE_DIR)
