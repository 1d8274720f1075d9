"""``gpuctl doctor``: what stands between this machine and a deployment, each problem with its fix.

Every check is a :class:`CheckResult`. Per provider: credentials present (``Provider.credentials``),
then the provider's own checks (``Provider.doctor_checks``: for the built-ins one cheap, bounded,
read-only call proving the credentials are accepted, RunPod ``GET /v2/pods``, Lambda
``GET /api/v1/instance-types``, AWS STS ``GetCallerIdentity``), all providers side by side. A provider
that cannot be reached is a warning (the credentials are not proven wrong); a refusal is a problem;
a plugin that fails to load or misbehaves is a problem of its own ('plugin'). Then what every
deployment needs: the project file, the state file, the user config, the project's SSH key, the
``ssh`` and ``docker`` clients, and the clock, compared with the ``Date`` of the answers already
received (no extra request).
"""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, computed_field

from gpuctl.concurrency import run_all
from gpuctl.errors import GpuctlError
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.guard import PluginError

if TYPE_CHECKING:
    from gpuctl.plugins import ProviderRegistry
    from gpuctl.providers.base import Provider, ProviderCheck

CheckStatus = Literal["ok", "warning", "problem", "skipped"]

#: seconds each provider's live check may take, retries included
PROBE_TIMEOUT_S = 5.0
#: clock offsets worth a warning, and those that break things (AWS refuses requests signed 5 minutes off)
SKEW_WARNING_S = 30.0
SKEW_PROBLEM_S = 300.0
CLOCK_FIX = "turn on time synchronisation (Linux: timedatectl set-ntp true; macOS/Windows: set time automatically)"


class CheckResult(BaseModel):
    """One finding. ``fix`` says what to do whenever ``status`` is not ``ok``."""

    name: str = Field(description="credentials, plugin, api (or a provider's own check), hf-token, project, state, "
                                  "config, ssh-key, ssh, docker, clock")
    provider: str | None = Field(default=None, description="the provider it concerns; None for the machine")
    status: CheckStatus
    detail: str
    fix: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """False only for a problem; warnings and skipped checks do not stop a deployment."""
        return self.status != "problem"


class DoctorReport(BaseModel):
    """Every check, the providers ready to deploy, and whether gpuctl can deploy at all."""

    checks: list[CheckResult]
    ready: list[str] = Field(description="providers whose credentials are present and were not rejected")
    clock_skew_seconds: float | None = Field(description="local clock minus the providers' (None: no answer)")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when at least one provider is ready and nothing every deployment needs is broken."""
        return bool(self.ready) and not self.machine_problems

    @property
    def machine_problems(self) -> list[CheckResult]:
        return [check for check in self.checks if check.provider is None and not check.ok]


def run_checks(project_root: Path, registry: ProviderRegistry, *, timeout: float = PROBE_TIMEOUT_S,
               now: Callable[[], datetime] | None = None) -> DoctorReport:
    """Run every check; never raises for what it finds. ``now`` is the local clock (UTC)."""
    now = now or (lambda: datetime.now(timezone.utc))
    checks: list[CheckResult] = []
    present: dict[str, Provider] = {}
    for name in registry.names():
        if registry.classes[name].can(Capability.USER_HOST):
            continue  # --host machines are checked when used: they have no account to check
        check, provider = _credentials(name, registry, timeout)
        checks.append(check)
        if check.status == "ok" and provider is not None:
            present[name] = provider
    checks += [CheckResult(name="plugin", provider=broken.name, status="problem",
                           detail=f"failed to load: {broken.error}",
                           fix=f"reinstall or upgrade {broken.package or 'the plugin'}") for broken in registry.broken]
    live, dates = _provider_checks(present, timeout, now)
    checks += live
    rejected = {check.provider for check in live if check.status == "problem"}
    ready = [name for name in present if name not in rejected]
    measured = _skew(dates)
    skew = measured[1] if measured else None
    checks += [_hf_token(), _project(project_root), _state(project_root), _config(), _ssh_key(project_root),
               _tool("ssh", "'gpuctl ssh', 'gpuctl logs' and tunnels to private endpoints run OpenSSH's client",
                     "install OpenSSH's client (Debian/Ubuntu: apt install openssh-client)"),
               _tool("docker", "only 'gpuctl up --host local' needs it (engines on this machine)",
                     "install Docker (https://docs.docker.com/engine/install/) if you deploy to this machine"),
               _clock(measured)]
    return DoctorReport(checks=checks, ready=ready, clock_skew_seconds=None if skew is None else round(skew, 1))


def _plugin_problem(name: str, error: PluginError) -> CheckResult:
    return CheckResult(name="plugin", provider=name, status="problem", detail=error.message, fix=error.hint)


def _credentials(name: str, registry: ProviderRegistry, timeout: float) -> tuple[CheckResult, Provider | None]:
    try:
        provider = registry.create(name, timeout=timeout)
        status = provider.credentials()
    except PluginError as exc:
        return _plugin_problem(name, exc), None
    except GpuctlError as exc:
        return CheckResult(name="credentials", provider=name, status="problem", detail=exc.message, fix=exc.hint), None
    if status.present:
        return CheckResult(name="credentials", provider=name, status="ok", detail=f"from {status.source}"), provider
    return CheckResult(name="credentials", provider=name, status="problem", detail="not set", fix=status.hint), None


def _provider_checks(providers: dict[str, Provider], timeout: float, now: Callable[[], datetime]
                     ) -> tuple[list[CheckResult], list[tuple[str, str, datetime]]]:
    """Each provider's own checks, side by side; also (provider, Date header, local time of the answer) per
    answer that carried one."""
    received: dict[str, datetime] = {}

    def timed(name: str) -> Callable[[], list[ProviderCheck]]:
        def call() -> list[ProviderCheck]:
            found = providers[name].doctor_checks()
            received[name] = now()
            return found
        return call

    started = time.monotonic()
    outcomes = run_all({name: timed(name) for name in providers}, timeout=timeout + 1.0)
    checks, dates = [], []
    for name, outcome in outcomes.items():
        if not outcome.finished:
            checks.append(CheckResult(name="api", provider=name, status="warning",
                                      detail=f"no answer within {time.monotonic() - started:.0f}s; credentials not "
                                             "verified", fix="check the network, then run 'gpuctl doctor' again"))
        elif isinstance(outcome.error, PluginError):
            checks.append(_plugin_problem(name, outcome.error))
        elif outcome.error is not None:
            message = outcome.error.message if isinstance(outcome.error, GpuctlError) else str(outcome.error)
            checks.append(CheckResult(name="api", provider=name, status="warning",
                                      detail=f"its checks failed: {message}", fix="try again later"))
        elif not outcome.value:
            checks.append(CheckResult(name="api", provider=name, status="skipped",
                                      detail="the provider has no live check"))
        else:
            for found in outcome.value:
                checks.append(CheckResult(name=found.name, provider=name, status=found.status, detail=found.detail,
                                          fix=found.fix))
                if found.server_date:
                    dates.append((name, found.server_date, received[name]))
    return checks, dates


def _skew(dates: list[tuple[str, str, datetime]]) -> tuple[str, float] | None:
    """(provider, local clock minus its ``Date``) for the first usable answer; ``Date`` has whole seconds."""
    for provider, header, local in dates:
        try:
            remote = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            continue
        if remote.tzinfo is not None:
            return provider, (local - remote).total_seconds()
    return None


def _clock(measured: tuple[str, float] | None) -> CheckResult:
    if measured is None:
        return CheckResult(name="clock", status="skipped", detail="no provider answered to compare the clock with")
    source, skew = measured
    direction = "ahead of" if skew > 0 else "behind"
    detail = f"local clock {abs(skew):.0f}s {direction} {source}'s"
    if abs(skew) >= SKEW_PROBLEM_S:
        return CheckResult(name="clock", status="problem", fix=CLOCK_FIX,
                           detail=f"{detail}: AWS refuses requests signed this far off, and TTL deadlines move")
    if abs(skew) >= SKEW_WARNING_S:
        return CheckResult(name="clock", status="warning", detail=f"{detail}: TTL deadlines move by as much",
                           fix=CLOCK_FIX)
    return CheckResult(name="clock", status="ok", detail=detail)


def _hf_token() -> CheckResult:
    from gpuctl.config import HF_TOKEN
    from gpuctl.credentials import resolve_credential

    token = resolve_credential(HF_TOKEN)
    if token.present:
        return CheckResult(name="hf-token", status="ok", detail=f"from {token.source}")
    return CheckResult(name="hf-token", status="warning", detail="not set: gated models (llama, mistral, gemma) "
                       "cannot be downloaded", fix=token.hint)


def _project(root: Path) -> CheckResult:
    from gpuctl.project import PROJECT_FILE, load_project_file

    path = root / PROJECT_FILE
    try:
        project = load_project_file(root)
    except GpuctlError as exc:
        return CheckResult(name="project", status="problem", detail=exc.message, fix=exc.hint)
    if not path.is_file():
        return CheckResult(name="project", status="ok", detail=f"no {PROJECT_FILE} in {root} (optional: gpuctl init)")
    defaults = ", ".join(f"{key} {value}" for key, value in project.model_dump(exclude_none=True).items())
    return CheckResult(name="project", status="ok", detail=f"{path}: {defaults or 'no defaults'}")


def _state(root: Path) -> CheckResult:
    from gpuctl.state import StateStore

    store = StateStore(root)
    try:
        state = store.read()
    except GpuctlError as exc:
        return CheckResult(name="state", status="problem", detail=exc.message,
                           fix=f"{exc.hint}; move it aside only once 'gpuctl gc --dry-run' shows nothing billing")
    if not store.path.exists():
        return CheckResult(name="state", status="ok", detail="no deployments yet")
    return CheckResult(name="state", status="ok",
                       detail=f"{store.path}: {len(state.deployments)} deployment(s) on record")


def _config() -> CheckResult:
    from gpuctl.config import UserConfig

    config = UserConfig()
    try:
        keys = config.load()
    except GpuctlError as exc:
        return CheckResult(name="config", status="problem", detail=exc.message, fix=exc.hint)
    if not config.path.exists():
        return CheckResult(name="config", status="ok", detail="no config file (optional: gpuctl config set)")
    if config.path.stat().st_mode & 0o077:
        return CheckResult(name="config", status="warning", detail=f"{config.path} is readable by other users",
                           fix=f"chmod 600 {config.path}")
    return CheckResult(name="config", status="ok", detail=f"{config.path}: {len(keys)} key(s), mode 0600")


def _ssh_key(root: Path) -> CheckResult:
    from gpuctl.host.keys import KEY_FILE, SSH_DIR
    from gpuctl.project import STATE_DIR

    path = root / STATE_DIR / SSH_DIR / KEY_FILE
    if not path.exists():
        return CheckResult(name="ssh-key", status="ok", detail=f"{path} is created on the first deployment")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return CheckResult(name="ssh-key", status="problem",
                           detail=f"{path} has mode {mode:04o}: OpenSSH refuses a private key others can read",
                           fix=f"chmod 600 {path}")
    try:
        from cryptography.hazmat.primitives import serialization

        serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        return CheckResult(name="ssh-key", status="problem", detail=f"{path} is not a usable OpenSSH key ({exc})",
                           fix=f"take down its deployments first ('gpuctl down --all'), then delete {path}; "
                               "gpuctl makes a new one")
    return CheckResult(name="ssh-key", status="ok", detail=f"{path}, mode 0600")


def _tool(name: str, why: str, fix: str) -> CheckResult:
    found = shutil.which(name)
    if found:
        return CheckResult(name=name, status="ok", detail=found)
    return CheckResult(name=name, status="warning", detail=f"'{name}' not found on PATH: {why}", fix=fix)


def host_checks(target: str, state_dir: Path, *, identity: Path | None = None, accept_host_key: bool = False
                ) -> tuple[list[CheckResult], GpuctlError | None]:
    """``doctor --host``: can gpuctl deploy to this machine of the user's? Login, GPUs (free, known), docker
    and its NVIDIA runtime, each a check of the ``ssh`` provider; and the first error met (None: ready).

    Nothing on the machine is changed (no bootstrap: it is the user's).
    """
    from gpuctl.deploy.hosts import connect, host_offer, opened
    from gpuctl.host.checks import check_host
    from gpuctl.host.target import parse_target
    from gpuctl.providers.ssh import HostProvider

    where = HostProvider.name
    checks: list[CheckResult] = []
    try:
        parsed = parse_target(target)
        with opened(connect(parsed, state_dir, identity=identity, accept_host_key=accept_host_key)) as shell:
            checks.append(CheckResult(name="login", provider=where, status="ok", detail=shell.where))
            offer = host_offer(shell, parsed)
            checks.append(CheckResult(name="gpus", provider=where, status="ok",
                                      detail=f"{offer.gpu_count} x {offer.gpu}, free"))
            report = check_host(shell, expected_gpu=offer.gpu, expected_count=offer.gpu_count, bootstrap=False,
                                user_owned=True)
            checks.append(CheckResult(name="docker", provider=where, status="ok",
                                      detail=f"docker {report.docker.server_version}, runtime {report.nvidia_runtime}"
                                      + (" (through sudo)" if report.docker_sudo else "")))
    except GpuctlError as exc:
        step = ("login", "gpus", "docker")[min(len(checks), 2)]
        checks.append(CheckResult(name=step, provider=where, status="problem", detail=exc.message, fix=exc.hint))
        return checks, exc
    return checks, None
