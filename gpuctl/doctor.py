"""``gpuctl doctor``: what stands between this machine and a deployment, each problem with its fix.

Every check is a :class:`CheckResult`. Per provider: credentials present, then one cheap, bounded,
read-only call that proves the provider accepts them (RunPod ``GET /v2/pods``, Lambda
``GET /api/v1/instance-types``, AWS STS ``GetCallerIdentity``). A provider that cannot be reached is
a warning (the credentials are not proven wrong); a 401/403 is a problem. Then what every deployment
needs: the project file, the state file, the user config, the project's SSH key, the ``ssh`` and
``docker`` clients, and the clock, compared with the ``Date`` of the answers already received (no
extra request).
"""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, computed_field

from gpuctl.concurrency import run_all
from gpuctl.errors import CredentialsError, GpuctlError
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.plugins import ProviderRegistry
    from gpuctl.providers.http import JsonApiClient

CheckStatus = Literal["ok", "warning", "problem", "skipped"]

#: seconds each provider's live check may take, retries included
PROBE_TIMEOUT_S = 5.0
#: clock offsets worth a warning, and those that break things (AWS refuses requests signed 5 minutes off)
SKEW_WARNING_S = 30.0
SKEW_PROBLEM_S = 300.0
CLOCK_FIX = "turn on time synchronisation (Linux: timedatectl set-ntp true; macOS/Windows: set time automatically)"


class CheckResult(BaseModel):
    """One finding. ``fix`` says what to do whenever ``status`` is not ``ok``."""

    name: str = Field(description="credentials, plugin, api, hf-token, project, state, config, ssh-key, ssh, docker, "
                                  "clock")
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


@dataclass(frozen=True)
class ProbeAnswer:
    """What a provider's live check called, and the ``Date`` header of its answer (for the clock check)."""

    call: str
    date: str | None


Probe = Callable[[float], ProbeAnswer]


def run_checks(project_root: Path, registry: ProviderRegistry, *, timeout: float = PROBE_TIMEOUT_S,
               probes: dict[str, Probe] | None = None, now: Callable[[], datetime] | None = None) -> DoctorReport:
    """Run every check; never raises for what it finds. ``now`` is the local clock (UTC)."""
    now = now or (lambda: datetime.now(timezone.utc))
    probes = PROBES if probes is None else probes
    checks: list[CheckResult] = []
    present: list[str] = []
    for name in registry.names():
        if registry.classes[name].can(Capability.USER_HOST):
            continue  # --host machines are checked when used: they have no account to check
        check = _credentials(name, registry)
        checks.append(check)
        if check.status == "ok":
            present.append(name)
    checks += [CheckResult(name="plugin", provider=broken.name, status="problem",
                           detail=f"failed to load: {broken.error}",
                           fix=f"reinstall or upgrade {broken.package or 'the plugin'}") for broken in registry.broken]
    live, dates = _probe_all(present, probes, timeout, now)
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


def _credentials(name: str, registry: ProviderRegistry) -> CheckResult:
    try:
        status = registry.create(name).credentials()
    except GpuctlError as exc:
        return CheckResult(name="credentials", provider=name, status="problem", detail=exc.message, fix=exc.hint)
    if status.present:
        return CheckResult(name="credentials", provider=name, status="ok", detail=f"from {status.source}")
    return CheckResult(name="credentials", provider=name, status="problem", detail="not set", fix=status.hint)


def _probe_all(names: list[str], probes: dict[str, Probe], timeout: float,
               now: Callable[[], datetime]) -> tuple[list[CheckResult], list[tuple[str, str, datetime]]]:
    """The live checks, side by side; also (provider, Date header, local time of the answer) per answer."""
    calls = {name: probes[name] for name in names if name in probes}
    received: dict[str, datetime] = {}

    def timed(name: str) -> Callable[[], ProbeAnswer]:
        def call() -> ProbeAnswer:
            answer = calls[name](timeout)
            received[name] = now()
            return answer
        return call

    started = time.monotonic()
    outcomes = run_all({name: timed(name) for name in calls}, timeout=timeout + 1.0)
    checks, dates = [], []
    for name in names:
        outcome = outcomes.get(name)
        if outcome is None:
            checks.append(CheckResult(name="api", provider=name, status="skipped",
                                      detail="gpuctl has no live check for this provider"))
        elif not outcome.finished:
            checks.append(CheckResult(name="api", provider=name, status="warning",
                                      detail=f"no answer within {time.monotonic() - started:.0f}s; credentials not "
                                             "verified", fix="check the network, then run 'gpuctl doctor' again"))
        elif outcome.error is not None:
            checks.append(_failed(name, outcome.error))
        else:
            answer = outcome.value
            assert answer is not None
            checks.append(CheckResult(name="api", provider=name, status="ok",
                                      detail=f"credentials accepted ({answer.call}, {outcome.seconds:.2f}s)"))
            if answer.date:
                dates.append((name, answer.date, received[name]))
    return checks, dates


def _failed(name: str, error: BaseException) -> CheckResult:
    if isinstance(error, CredentialsError):
        return CheckResult(name="api", provider=name, status="problem", detail=f"credentials rejected: {error.message}",
                           fix=error.hint)
    message = error.message if isinstance(error, GpuctlError) else f"{type(error).__name__}: {error}"
    fix = error.hint if isinstance(error, GpuctlError) and error.hint else "try again later"
    return CheckResult(name="api", provider=name, status="warning",
                       detail=f"could not reach it, credentials not verified: {message}", fix=fix)


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
    from gpuctl.credentials import resolve_credential

    token = resolve_credential("hf.token")
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


# -- the live checks ----------------------------------------------------------------------------------

def http_probe(api_cls: type[JsonApiClient], path: str) -> Probe:
    """A GET of ``path`` with the provider's own client: its key, base URL and error mapping, no retries."""

    def probe(timeout: float) -> ProbeAnswer:
        import httpx

        from gpuctl.providers.http import RetryPolicy, base_url_from_env, require_credential

        class DateRecorder(httpx.HTTPTransport):
            date: str | None = None

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                response = super().handle_request(request)
                self.date = response.headers.get("date")
                return response

        recorder = DateRecorder()
        url = (base_url_from_env(api_cls.base_url_env, api_cls.default_base_url) if api_cls.base_url_env
               else api_cls.default_base_url)
        with api_cls(require_credential(api_cls.credential_key, api_cls.provider), url, timeout=timeout,
                     retry=RetryPolicy(max_retries=0), transport=recorder) as api:
            api.request("GET", path)
        return ProbeAnswer(call=f"GET {api_cls.api_prefix}{path}", date=recorder.date)

    return probe


def aws_probe(timeout: float) -> ProbeAnswer:
    """STS ``GetCallerIdentity``: needs no permission, so it tests the credentials alone."""
    from gpuctl.providers.aws import aws_errors, default_region, make_client, new_session

    with aws_errors():
        answer = make_client(new_session(), "sts", default_region(), timeout).get_caller_identity()
    return ProbeAnswer(call="STS GetCallerIdentity", date=answer["ResponseMetadata"]["HTTPHeaders"].get("date"))


def _runpod(timeout: float) -> ProbeAnswer:
    from gpuctl.providers.runpod_api import RunPodApi

    return http_probe(RunPodApi, "/pods")(timeout)


def _lambda(timeout: float) -> ProbeAnswer:
    from gpuctl.providers.lambda_api import LambdaApi

    return http_probe(LambdaApi, "/instance-types")(timeout)


#: the live check of each built-in provider; a plugin without one gets a 'skipped' row
PROBES: dict[str, Probe] = {"runpod": _runpod, "lambda": _lambda, "aws": aws_probe}
