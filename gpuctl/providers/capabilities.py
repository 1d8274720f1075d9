"""What a provider can do, declared once on its class (``Provider.capabilities``) and asked everywhere.

Callers never probe for overridden methods or catch ``NotImplementedError``: they ask
``provider.can(Capability.X)`` (or ``provider_cls.can``) before calling the methods the capability
names. A provider declares how its machines run an engine through exactly one *machine kind*
(``SSH_MACHINE``, ``ENGINE_CONTAINER`` or ``USER_HOST``) when it can deploy at all.
"""

from __future__ import annotations

from enum import Enum


class Capability(str, Enum):
    """One thing a provider can do; the docstring of each member names the methods it requires."""

    #: ``launch``, ``get`` and ``terminate``: the provider rents machines gpuctl deploys to
    LAUNCH = "launch"
    #: ``list_by_tag``: instances can be found by their tags (how ``gc`` finds orphans)
    LIST_BY_TAG = "list-by-tag"
    #: machine kind: an instance is a machine gpuctl reaches over SSH and runs docker on (Lambda, AWS)
    SSH_MACHINE = "ssh-machine"
    #: machine kind: ``launch`` starts ``LaunchRequest.engine`` itself and ``Instance.endpoint_url`` serves it (RunPod)
    ENGINE_CONTAINER = "engine-container"
    #: machine kind: the user's own machine (``--host``); never launched, stopped or listed in prices
    USER_HOST = "user-host"
    #: ``engine_logs``: the provider shows the output of the engine it runs (with ``ENGINE_CONTAINER``)
    ENGINE_LOGS = "engine-logs"
    #: ``weights_caches``, ``weights_cache_region``, ``ensure_weights_cache``, ``delete_weights_cache``
    WEIGHTS_CACHE = "weights-cache"
    #: ``weights_mirror``: the cache is read and filled through URLs rather than mounted (with ``WEIGHTS_CACHE``)
    WEIGHTS_MIRROR = "weights-mirror"
    #: ``seed_weights``: the provider fills its cache itself, before the engine starts (with ``ENGINE_CONTAINER``)
    SEED_WEIGHTS = "seed-weights"
    #: ``launch_nodes`` and ``release_nodes``: several machines placed together that reach each other on every
    #: port, for one engine across them (vLLM's multi-node mode); with ``SSH_MACHINE`` and ``LIST_BY_TAG``
    MULTI_NODE = "multi-node"
    #: ``billed``: the provider's own billing records say what each instance cost (``gpuctl cost``)
    BILLING = "billing"


#: the provider methods each capability declares; gpuctl never calls one whose capability is undeclared
METHODS: dict[Capability, tuple[str, ...]] = {
    Capability.LAUNCH: ("launch", "get", "terminate"),
    Capability.LIST_BY_TAG: ("list_by_tag",),
    Capability.ENGINE_LOGS: ("engine_logs",),
    Capability.WEIGHTS_CACHE: ("weights_caches", "weights_cache_region", "ensure_weights_cache",
                               "delete_weights_cache"),
    Capability.WEIGHTS_MIRROR: ("weights_mirror",),
    Capability.SEED_WEIGHTS: ("seed_weights",),
    Capability.MULTI_NODE: ("launch_nodes", "release_nodes"),
    Capability.BILLING: ("billed",),
}

#: how a provider's machines run the engine: a provider that can deploy declares exactly one
MACHINE_KINDS = frozenset({Capability.SSH_MACHINE, Capability.ENGINE_CONTAINER, Capability.USER_HOST})


def declaration_problems(capabilities: frozenset[Capability]) -> list[str]:
    """What is inconsistent in a set of declared capabilities (empty when it is sound)."""
    if not isinstance(capabilities, (set, frozenset)) or not all(isinstance(c, Capability) for c in capabilities):
        return ["capabilities must be a frozenset of gpuctl.providers.capabilities.Capability"]
    problems = []
    kinds = capabilities & MACHINE_KINDS
    if len(kinds) > 1:
        problems.append(f"declares several machine kinds ({', '.join(sorted(k.value for k in kinds))})")
    if Capability.LAUNCH in capabilities and not kinds:
        problems.append("can launch but declares no machine kind (ssh-machine, engine-container or user-host)")
    needs = {Capability.ENGINE_LOGS: Capability.ENGINE_CONTAINER, Capability.SEED_WEIGHTS: Capability.ENGINE_CONTAINER,
             Capability.WEIGHTS_MIRROR: Capability.WEIGHTS_CACHE, Capability.LIST_BY_TAG: Capability.LAUNCH,
             Capability.MULTI_NODE: Capability.SSH_MACHINE, Capability.BILLING: Capability.LAUNCH}
    problems += [f"declares {cap.value} without {needed.value}"
                 for cap, needed in needs.items() if cap in capabilities and needed not in capabilities]
    if Capability.MULTI_NODE in capabilities and Capability.LIST_BY_TAG not in capabilities:
        # a multi-node deployment's machines are found (and torn down) by its tags
        problems.append(f"declares {Capability.MULTI_NODE.value} without {Capability.LIST_BY_TAG.value}")
    return problems
