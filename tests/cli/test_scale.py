"""The CLI of services and nodes without deploying: dry runs, refusals, unknown names."""

from __future__ import annotations

import json


def test_a_replicas_dry_run_shows_every_replica_and_the_total(gpuctl) -> None:
    result = gpuctl("up", "llama-3-8b", "--replicas", "2", "--name", "svc", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [r["name"] for r in doc["replicas"]] == ["svc-1", "svc-2"]
    assert doc["price_per_hour"] == round(sum(r["offer"]["price_per_hour"] for r in doc["replicas"]), 4)
    assert all(r["engine"]["public"] for r in doc["replicas"]), "the router reaches replicas behind their key"


def test_a_nodes_dry_run_is_priced_for_every_node(gpuctl) -> None:
    result = gpuctl("up", "llama-3.1-70b", "--gpu", "a100-40gb-sxm", "--nodes", "2", "--ttl", "1h", "--dry-run",
                    "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["nodes"], doc["offer"]["provider"], doc["engine"]["image"]) == (2, "aws", "vllm/vllm-openai:v0.11.1")
    assert doc["estimated_cost_usd"] == round(doc["offer"]["price_per_hour"] * 2, 2)
    assert "look up before out: 8 x A100-40GB-SXM in one machine" in result.stderr
    lambda_only = gpuctl("up", "llama-3.1-70b", "--gpu", "h100-sxm", "--nodes", "2", "--provider", "lambda",
                         "--dry-run")
    assert lambda_only.exit_code == 2 and "cannot place machines together for one engine" in lambda_only.stderr


def test_refusals_and_unknown_names(gpuctl) -> None:
    assert gpuctl("scale", "nope", "2").exit_code == 3
    assert gpuctl("status", "nope").exit_code == 3
    mixed = gpuctl("up", "llama-3-8b", "--nodes", "2", "--replicas", "2", "--dry-run")
    assert mixed.exit_code == 2 and "--nodes spans rented machines" in mixed.stderr
    on_host = gpuctl("up", "llama-3-8b", "--replicas", "2", "--host", "local", "--dry-run")
    assert on_host.exit_code == 2 and "--replicas deploys to rented machines" in on_host.stderr
