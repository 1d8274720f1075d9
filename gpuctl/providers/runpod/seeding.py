"""Filling a RunPod network volume with a model's weights: a short-lived CPU pod runs gpuctl's fetcher.

RunPod has no SSH-driven docker, and REST v2 cannot replace an image's entrypoint (``args`` only go to
it), so the fetcher cannot run inside the engine pod before the engine. Instead a small CPU pod in the
volume's data center mounts the volume and runs :mod:`gpuctl.weights.fetcher` (stdlib only) in a plain
Python image: ``args`` is ``python3 -c BOOTSTRAP``, which decodes the fetcher from the pod's environment;
the job travels there too, and so does the HF token (the pod environment is how RunPod pods get their
secrets; never ``args``, which RunPod shows as the pod's command). Its JSON events are read from the
pod's log stream and drive the same progress display and errors as the SSH path
(:mod:`gpuctl.weights.remote`).

Money: the pod carries gpuctl's tags, with the seeding's own launch token (a retry adopts the pod
instead of starting another) and a deadline, so ``gpuctl down`` and ``gpuctl gc`` find it if gpuctl
dies; and it is deleted however the seeding ends, Ctrl-C included.
"""

from __future__ import annotations

import base64
import json
import logging
import shlex
import time
import zlib
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from gpuctl.errors import GpuctlError, NoCapacityError, NotFoundError, ProviderError, TimeoutError_
from gpuctl.providers.http import ProviderHttpError
from gpuctl.providers.runpod.client import MAX_LOG_LINES, TAGS_ENV, LogEvent
from gpuctl.providers.tagging import EXPIRES_AT, LAUNCH_TOKEN
from gpuctl.weights.remote import FETCHER_SOURCE, TOKEN_ENV, Event, FetcherRun, fetcher_error, parse_event

if TYPE_CHECKING:
    from gpuctl.events import Reporter
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.runpod.client import CpuType, Pod, RunPodApi
    from gpuctl.weights.models import CacheReport, SeedRequest

log = logging.getLogger(__name__)

#: any image with a Python 3.8+ runs the fetcher; a slim official one pulls in seconds
SEED_IMAGE = "python:3.12-slim"
#: where the seeding pod mounts the volume (its root is the engine's HF cache)
SEED_MOUNT = "/gpuctl-cache"
#: vCPUs of the seeding pod (a power of two, as RunPod requires): enough to hash while downloading
SEED_VCPUS = 4
#: container disk in GB: the image and nothing else (the weights go to the volume)
SEED_DISK_GB = 10
FETCHER_ENV = "GPUCTL_FETCHER"
JOB_ENV = "GPUCTL_WEIGHTS_JOB"
_JOB_FILE = "/tmp/gpuctl-weights-job.json"
#: the fetcher's source from the environment (compressed: one variable stays far below the 128 KiB an
#: environment string may have); the job to a file, as the fetcher reads it (no stdin in a pod)
BOOTSTRAP = (f"import base64,os,zlib;open('{_JOB_FILE}','w').write(os.environ['{JOB_ENV}']);"
             f"exec(compile(zlib.decompress(base64.b64decode(os.environ['{FETCHER_ENV}'])),"
             "'gpuctl-weights-fetcher.py','exec'))")
#: seconds between two looks at the pod and its log (longer when RunPod's rate limit quota runs low)
POLL_S = 2.0
#: requests one look makes (the pod, its log)
POLL_REQUESTS = 2
#: time for placing the pod, pulling the image and everything but the transfer itself
START_BUDGET_S = 900.0
#: the slowest transfer gpuctl waits for (bytes/s); with START_BUDGET_S, the bound on the whole seeding
MIN_RATE_BPS = 20e6
_ENDED = ("EXITED", "ERROR", "TERMINATED")



def seed(api: RunPodApi, cache: WeightsCache, request: SeedRequest, reporter: Reporter) -> CacheReport:
    """Run the fetcher for ``request`` in a CPU pod mounting ``cache``; the pod is deleted however this ends.

    Raises NoCapacityError when no CPU pod can be had in the volume's data center (the next offer may do),
    TimeoutError_ past the bound, and the SSH path's errors for a failed fetch (gated 6, not found 3, ...).
    """
    from gpuctl.weights.ensure import progress_renderer

    manifest, started = request.manifest, time.monotonic()
    budget = START_BUDGET_S + manifest.total_bytes / MIN_RATE_BPS
    where = f"RunPod volume {cache.name}"
    pod = _start(api, cache, request, budget, reporter)
    try:
        reporter.info(f"RunPod CPU pod {pod.id} is filling {cache.name} with {manifest.repo}")
        with ExitStack() as progress:
            run = _follow(api, pod.id, progress_renderer(reporter, progress, manifest.repo),
                          deadline=started + budget)
    except BaseException:
        _remove(api, pod.id, reporter, failing=True)
        raise
    _remove(api, pod.id, reporter, failing=False)
    done = run.last("done")
    if done is None:
        raise fetcher_error(run, manifest.repo, where, token_given=bool(request.hf_token))
    from gpuctl.weights.models import report_from_done

    return report_from_done(done, manifest, revision=manifest.revision, where=where, cache_dir=SEED_MOUNT,
                            source="hub", seconds=time.monotonic() - started)


def seed_pod_request(cache: WeightsCache, request: SeedRequest, cpu: dict[str, Any], *,
                     expires_at: int) -> dict[str, Any]:
    """The ``POST /v2/pods`` body of the seeding pod: secrets and the job in ``env``, never in ``args``."""
    from gpuctl.weights.models import fetch_job

    job = fetch_job(request.endpoint, request.manifest, request.workers)
    tags = {**request.tags, LAUNCH_TOKEN: request.idempotency_token, EXPIRES_AT: str(expires_at)}
    fetcher = base64.b64encode(zlib.compress(FETCHER_SOURCE.read_bytes(), 9)).decode()
    env = {FETCHER_ENV: fetcher, JOB_ENV: json.dumps(job), "PYTHONDONTWRITEBYTECODE": "1",
           TAGS_ENV: json.dumps(tags, sort_keys=True, separators=(",", ":"))}
    if request.hf_token:
        env[TOKEN_ENV] = request.hf_token
    args = ["python3", "-u", "-c", BOOTSTRAP, "fetch", "--cache", SEED_MOUNT, "--job", _JOB_FILE]
    return {
        "name": f"{request.name}-weights", "image": SEED_IMAGE, "args": shlex.join(args), "cpu": cpu,
        "cloud": "SECURE", "env": env, "disk": SEED_DISK_GB, "dataCenterIds": [cache.region],
        "mounts": {"network": [{"volumeId": cache.id, "path": SEED_MOUNT}]},
    }


def cheapest_cpu(cpus: list[CpuType], data_center: str, vcpus: int = SEED_VCPUS) -> dict[str, Any] | None:
    """The ``cpu`` of a create body: the cheapest flavor with ``vcpus`` free in ``data_center``; None if none is."""
    free = [c for c in cpus if c.vcpu.min <= vcpus <= c.vcpu.max
            and any(dc.id == data_center and dc.availability != "NONE" for dc in c.data_centers or [])]
    best = min(free, key=lambda c: (c.price.secure_per_vcpu, c.id), default=None)
    return {"id": best.id, "vcpuCount": vcpus} if best else None


def _start(api: RunPodApi, cache: WeightsCache, request: SeedRequest, budget: float, reporter: Reporter) -> Pod:
    """The seeding pod: the one an earlier try of this seeding left (same token), else a new one."""
    earlier = _pods_with_token(api, request.idempotency_token)
    if earlier:
        log.info("RunPod: seeding pod %s already carries token %s; following it", earlier[0].id,
                 request.idempotency_token)
        return earlier[0]
    with reporter.step(f"starting a CPU pod in {cache.region} to fill {cache.name}"):
        cpu = cheapest_cpu(api.list_cpu_types(vcpu_count=SEED_VCPUS), cache.region)
        if cpu is None:
            raise NoCapacityError(f"RunPod has no CPU pod with {SEED_VCPUS} vCPUs free in {cache.region} to fill "
                                  f"{cache.name}", "gpuctl moves on to the next offer; try again later")
        body = seed_pod_request(cache, request, cpu, expires_at=int(time.time() + budget))
        try:
            return api.create_pod(body)
        except BaseException as exc:
            # a create that failed on the way back may still have made the pod: nothing may be left billing
            _remove_token(api, request.idempotency_token, reporter)
            if isinstance(exc, ProviderHttpError) and exc.info.status == 400:
                raise NoCapacityError(f"RunPod could not place a CPU pod in {cache.region} to fill {cache.name} "
                                      f"({exc.info.summary()})", "gpuctl moves on to the next offer") from None
            raise


def _pods_with_token(api: RunPodApi, token: str) -> list[Pod]:
    return [p for p in api.list_pods() if p.tags.get(LAUNCH_TOKEN) == token and p.status != "TERMINATED"]


def _follow(api: RunPodApi, pod_id: str, on_event: Callable[[Event], None], *, deadline: float) -> FetcherRun:
    """Read the pod's log until the fetcher's last event (``done`` or ``error``) or the pod's end.

    Both are needed: RunPod restarts a container that exits, so an ended fetcher may never make the
    pod EXITED; and a pod that fails to start leaves no event at all. This loop can run for hours, so
    RunPod's rate limit is honoured rather than fatal: a 429 waits its ``Retry-After`` (up to the
    deadline), and the polls slow down as the quota the API reports (``RateLimit``) runs low.
    """
    run = FetcherRun(exit_code=-1)
    other: deque[str] = deque(maxlen=20)
    last_id: str | None = None
    status = "PROVISIONING"
    while True:
        try:
            status = api.get_pod(pod_id).status  # before the log: an ended pod's log is complete
            fresh = _after(api.pod_log_events(pod_id, MAX_LOG_LINES, after=last_id), last_id)
        except ProviderHttpError as exc:
            if exc.info.status != 429:
                raise
            _wait(exc.info.retry_after or POLL_S, deadline, pod_id, status, why=f"rate limited ({exc.info.summary()})")
            continue
        last_id = next((e.id for e in reversed(fresh) if e.id), last_id)
        for entry in fresh:
            event = parse_event(entry.line)
            if event is None:
                if entry.line.strip():
                    other.append(entry.line.strip())
                continue
            run.events.append(event)
            on_event(event)
            if event.get("e") in ("done", "error"):
                break
        if run.last("done") or run.last("error") or status in _ENDED:
            break
        _wait(max(POLL_S, api.pace(POLL_REQUESTS)), deadline, pod_id, status)
    if not run.events:
        other.append(f"pod {pod_id} is {status} and its fetcher reported nothing")
    run.other_output = list(other)
    run.exit_code = 0 if run.last("done") else 1
    return run


def _wait(seconds: float, deadline: float, pod_id: str, status: str, *, why: str | None = None) -> None:
    """Sleep ``seconds`` before the next look at the pod, unless that would end past ``deadline``."""
    if time.monotonic() + seconds > deadline:
        waiting = f"; RunPod asks to wait {seconds:g} s more ({why})" if why else ""
        raise TimeoutError_(f"the RunPod pod {pod_id} filling the weights cache did not finish in time (status "
                            f"{status}{waiting})", "run the command again: what arrived is kept and the download "
                            "resumes")
    if why or seconds > POLL_S:
        log.info("RunPod: next look at pod %s in %.0f s%s", pod_id, seconds, f": {why}" if why else
                 " (the API's rate limit quota runs low)")
    time.sleep(seconds)


def _after(events: list[LogEvent], last_id: str | None) -> list[LogEvent]:
    """The events past ``last_id``: the API may resend the whole backfill, or only what is new."""
    ids = [e.id for e in events]
    return events[ids.index(last_id) + 1:] if last_id is not None and last_id in ids else events


def _remove(api: RunPodApi, pod_id: str, reporter: Reporter, *, failing: bool) -> None:
    """Delete the seeding pod. When it cannot be, say so; raise unless another error is already on its way."""
    try:
        api.delete_pod(pod_id)
    except NotFoundError:
        return
    except GpuctlError as exc:
        message = f"could not delete the RunPod seeding pod {pod_id}: {exc.one_line()}"
        hint = "delete it with 'gpuctl down' (it carries the deployment's tags) or 'gpuctl gc'"
        if failing:
            reporter.warn(f"{message}; {hint}")
            return
        raise ProviderError(message, hint) from None


def _remove_token(api: RunPodApi, token: str, reporter: Reporter) -> None:
    try:
        for pod in _pods_with_token(api, token):
            _remove(api, pod.id, reporter, failing=True)
    except GpuctlError as exc:
        reporter.warn(f"could not check RunPod for a seeding pod left by a failed create: {exc.one_line()}")
