"""``gpuctl up --idle/--budget`` (and ``idle:``/``budget:`` in gpuctl.yaml) in the plan, with its worst case and
its cold-start forecast (offline: snapshot prices, no history yet)."""

from __future__ import annotations

import json
from pathlib import Path


def dry_run(gpuctl, *args: str) -> dict:
    result = gpuctl("up", "llama-3-8b", "--provider", "lambda", *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_limits_come_from_the_project_and_the_flags_win(gpuctl, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("idle: 30m\nbudget: 10\n")
    limits = dry_run(gpuctl)["limits"]
    assert (limits["idle_seconds"], limits["budget_usd"], limits["enforced_by"]) == (1800, 10.0, "host")
    flagged = dry_run(gpuctl, "--idle", "5m", "--budget", "2.5", "--ttl", "8h")
    limits, price = flagged["limits"], flagged["offer"]["price_per_hour"]
    assert (limits["idle_seconds"], limits["budget_usd"], limits["ttl_seconds"]) == (300, 2.5, 28800)
    assert limits["worst_case_usd"] == 2.5 and limits["worst_case_seconds"] == int(2.5 / price * 3600)


def test_the_plan_shows_the_worst_case_and_the_forecast(gpuctl) -> None:
    result = gpuctl("up", "llama-3-8b", "--provider", "lambda", "--budget", "10", "--idle", "30m", "--dry-run")
    assert result.exit_code == 0, result.stderr
    limits = next(line for line in result.stdout.splitlines() if line.startswith("  limits"))
    assert "idle 30m, budget $10.00; at most $10.00 (" in limits
    wait = result.stdout.split("  wait     ", 1)[1]
    assert wait.startswith("about ") and "no past ups on this provider yet" in wait
    assert "assumed: a VM boots in about 2.5 minutes" in wait and "first token" in wait

    doc = dry_run(gpuctl)
    forecast = doc["cold_start"]
    assert [e["name"] for e in forecast["phases"]] == ["provision", "host", "image", "weights", "engine",
                                                      "first_token"]
    assert forecast["history_ups"] == 0 and all(e["basis"] for e in forecast["phases"])
    assert forecast["seconds"] == round(sum(e["seconds"] for e in forecast["phases"]), 1)


def test_no_limit_says_it_bills_until_down(gpuctl) -> None:
    doc = dry_run(gpuctl)
    assert doc["limits"]["worst_case_usd"] is None
    assert any("no --ttl or --budget" in note for note in doc["warnings"])


def test_bad_limits_are_usage_errors(gpuctl) -> None:
    assert gpuctl("up", "llama-3-8b", "--idle", "soon", "--dry-run").exit_code == 2
    assert gpuctl("up", "llama-3-8b", "--budget", "0", "--dry-run").exit_code == 2
