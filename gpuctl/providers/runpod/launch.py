"""What creating RunPod's engine pod sends (``POST /v2/pods``), and how its refusals read."""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from gpuctl.errors import NoCapacityError, ProviderError, UsageError
from gpuctl.providers.http import ProviderHttpError
from gpuctl.providers.runpod.caches import VOLUME_CLOUD
from gpuctl.providers.runpod.mapping import NAME, TIERS
from gpuctl.providers.tagging import launch_tags

if TYPE_CHECKING:
    from gpuctl.models.instance import LaunchRequest

SSH_PORT = "22/tcp"


def pod_request(request: LaunchRequest) -> dict[str, Any]:
    """The ``POST /v2/pods`` body for ``request``; refuses what RunPod would run differently than shown.

    The pod is created in exactly the cloud tier (and datacenter) of the offer, whose price the
    user saw, on a machine whose driver runs the engine image's CUDA version (``gpu.minCudaVersion``;
    otherwise the container cannot start there: "OCI runtime create failed"). v2 cannot replace the
    image's entrypoint: the engine's arguments go to the image's own (``vllm serve`` for vLLM,
    ``text-generation-launcher`` for TGI). With a weights cache, the
    network volume is mounted where the engine keeps its Hugging Face cache, and the pod is placed
    in the volume's data center.
    """
    offer, engine = request.offer, request.engine
    if offer.provider != NAME:
        raise UsageError(f"offer {offer.id} is not a RunPod offer")
    cloud = TIERS.get(offer.tier or "")
    if cloud is None:
        raise UsageError(f"RunPod offer {offer.id} names no cloud tier ({', '.join(TIERS)})",
                         "pick an offer from 'gpuctl prices --provider runpod'")
    if engine is None:
        raise UsageError("a RunPod pod is the engine container, but the launch request has no engine")
    if engine.secret_flags:
        raise UsageError(f"{engine.engine} takes its API key only as a command-line flag, and a RunPod pod gets "
                         "its secrets only as environment variables", "use --engine vllm on RunPod")
    missing = [name for name in engine.secret_env if name not in request.secrets]
    if missing:
        raise UsageError(f"no value for the engine's secret variable(s) {', '.join(missing)}")
    if engine.api_key_env is None:
        raise UsageError("a RunPod pod's endpoint is reachable by anyone through RunPod's proxy, so gpuctl "
                         "serves it only with an API key", "deploy with an API key, or use another provider")
    from gpuctl.providers.runpod.client import TAGS_ENV

    env = {**engine.env, **{name: request.secrets[name] for name in engine.secret_env},
           TAGS_ENV: json.dumps(launch_tags(request), sort_keys=True, separators=(",", ":"))}
    if request.ssh_public_key:
        # RunPod's images start sshd with the keys in PUBLIC_KEY; this pod's own key, not the account's
        env["PUBLIC_KEY"] = request.ssh_public_key
    gpu: dict[str, Any] = {"id": offer.instance_type, "count": offer.gpu_count}
    if engine.cuda_version is not None:
        gpu["minCudaVersion"] = engine.cuda_version
    body: dict[str, Any] = {
        "name": request.name, "image": engine.image, "args": shlex.join(engine.args), "gpu": gpu, "cloud": cloud,
        "ports": [f"{engine.port}/http", SSH_PORT], "env": env, "disk": request.disk_gb,
    }
    if offer.region != "any":
        body["dataCenterIds"] = [offer.region]
    cache = request.weights_cache
    if cache is not None:
        if cloud != VOLUME_CLOUD:
            raise UsageError(f"RunPod network volumes attach to Secure Cloud pods only, and offer {offer.id} is "
                             f"{offer.tier} cloud", "launch it without the weights cache (see weights_cache_region)")
        if offer.region not in ("any", cache.region):
            raise UsageError(f"RunPod offer {offer.id} is in {offer.region}, but its weights cache {cache.name} "
                             f"is in {cache.region}")
        # a network volume has no read-only mount: the offline engine only reads it regardless
        path = engine.cache_mount.removesuffix(":ro")
        body["mounts"] = {"network": [{"volumeId": cache.id, "path": path}]}
        body["dataCenterIds"] = [cache.region]
    return body


def create_error(exc: ProviderHttpError, body: dict[str, Any]) -> Exception:
    """The gpuctl error for a refused create; 400 is how v2 says the pod could not be placed."""
    info = exc.info
    where = f"{body['cloud'].lower()} cloud" + (f" in {body['dataCenterIds'][0]}" if "dataCenterIds" in body else "")
    what = f"{body['gpu']['count']}x {body['gpu']['id']}"
    if info.status == 400:
        # v2 gives capacity no code of its own: a 400 is "try the next candidate" (spec of createPod)
        return NoCapacityError(f"RunPod could not place {what} in {where} ({info.summary()})",
                               "gpuctl moves on to the next offer; if every offer fails with this message, "
                               "the request itself is at fault")
    if info.status == 402:
        return ProviderError(f"RunPod refused to create {what}: the account balance is too low ({info.summary()})",
                             "add credit to the RunPod account")
    return ProviderHttpError(f"RunPod API failed to create {what} in {where} ({info.summary()})", exc.hint, info=info)
