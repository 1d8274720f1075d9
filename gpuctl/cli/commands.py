"""The command table: where each subcommand lives and its one-line help.

Keeping the help text here lets ``gpuctl --help`` list every command without importing any of them.
"""

from __future__ import annotations

from typing import NamedTuple


class CommandEntry(NamedTuple):
    module: str
    attr: str
    short_help: str


COMMANDS: dict[str, CommandEntry] = {
    "prices": CommandEntry("gpuctl.cli.prices", "prices", "Live GPU offers across providers, cheapest first."),
    "models": CommandEntry("gpuctl.cli.models", "models", "List model recipes, or show one."),
    "fit": CommandEntry("gpuctl.cli.fit", "fit", "Which GPUs can serve a model, at what context."),
    "up": CommandEntry("gpuctl.cli.up", "up", "Deploy a model to a GPU (plan it with --dry-run)."),
    "status": CommandEntry("gpuctl.cli.status", "status", "Deployments: endpoint, uptime, cost so far, TTL, health."),
    "logs": CommandEntry("gpuctl.cli.logs", "logs", "Print (or follow) a deployment's engine log."),
    "ssh": CommandEntry("gpuctl.cli.ssh", "ssh", "Shell, command or tunnel on a deployment's host."),
    "env": CommandEntry("gpuctl.cli.env", "env", "OPENAI_BASE_URL/OPENAI_API_KEY exports for a deployment."),
    "scale": CommandEntry("gpuctl.cli.scale", "scale", "Add or remove replicas of a service (up --replicas)."),
    "top": CommandEntry("gpuctl.cli.top", "top", "Live view of deployments: GPUs, requests, tokens/s, latency, $."),
    "cost": CommandEntry("gpuctl.cli.cost", "cost", "Deployment costs at launch prices, beside the provider's bill."),
    "down": CommandEntry("gpuctl.cli.down", "down", "Tear a deployment down and print what it cost."),
    "gc": CommandEntry("gpuctl.cli.gc", "gc", "Find and remove instances no deployment accounts for."),
    "export": CommandEntry("gpuctl.cli.export", "export", "Kubernetes manifests for a model or a deployment."),
    "weights": CommandEntry("gpuctl.cli.weights", "weights", "Weights cached on a GPU host: ls, pull, verify, rm."),
    "bench": CommandEntry("gpuctl.cli.bench", "bench", "Latency, throughput and $ per 1M tokens of an endpoint."),
    "providers": CommandEntry("gpuctl.cli.providers", "providers", "Installed providers and their credentials."),
    "config": CommandEntry("gpuctl.cli.config", "config", "Read and write the user config file."),
    "init": CommandEntry("gpuctl.cli.init", "init", "Write gpuctl.yaml with this project's defaults."),
    "doctor": CommandEntry("gpuctl.cli.doctor", "doctor", "Check credentials, SSH key, tools and clock, with fixes."),
    "completion": CommandEntry("gpuctl.cli.completion", "completion", "Print the shell completion script."),
}

ALIASES: dict[str, str] = {"ls": "status"}
