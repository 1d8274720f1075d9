"""RunPod cannot expire a pod: REST v2 has no TTL field (CreatePodRequest), and the pod is the engine container,
so there is no machine to arm gpuctl's watchdog on. gpuctl keeps ``gc`` as the TTL's enforcer (docs/providers.md
says why), and ``up``'s plan says plainly that such a TTL holds only when gpuctl runs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.standins.fixtures import lambda_api, runpod_api  # noqa: F401  (fixtures)

NOTE = ("runpod cannot end an instance at its TTL by itself: the TTL is enforced only when gpuctl runs after the "
        "deadline ('gpuctl gc' or 'gpuctl down' terminates it); until then it bills")


def test_the_create_body_has_no_ttl_field_to_set() -> None:
    schemas = json.loads((Path(__file__).parents[1] / "standins" / "specs" / "runpod_rest_v2.json").read_text()
                         )["components"]["schemas"]

    def fields(schema: dict) -> set[str]:
        if "$ref" in schema:
            return fields(schemas[schema["$ref"].rsplit("/", 1)[1]])
        return set(schema.get("properties", {})).union(*(fields(part) for part in schema.get("allOf", [])))

    create = {name.lower() for name in fields(schemas["CreatePodRequest"])}
    assert {"name", "image", "gpu", "env"} <= create
    assert not any(word in name for name in create for word in ("ttl", "terminate", "expire", "stop"))


def test_a_runpod_plan_says_its_ttl_holds_only_while_gpuctl_runs(gpuctl, runpod_api) -> None:  # noqa: F811
    result = gpuctl("up", "llama-3-8b", "--provider", "runpod", "--ttl", "2h", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert NOTE in json.loads(result.stdout)["warnings"]
    human = gpuctl("up", "llama-3-8b", "--provider", "runpod", "--ttl", "2h", "--dry-run")
    assert f"warning: {NOTE}" in " ".join(human.stderr.split())


def test_a_vm_plan_does_not(gpuctl, lambda_api) -> None:  # noqa: F811
    result = gpuctl("up", "llama-3-8b", "--provider", "lambda", "--ttl", "2h", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert not any("TTL is enforced only" in note for note in json.loads(result.stdout)["warnings"])
