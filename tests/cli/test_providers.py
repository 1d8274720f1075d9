"""``gpuctl providers`` and the plugin registry: credential presence, never values, broken plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

from gpuctl.plugins import ENTRY_POINT_GROUP, ProviderRegistry


def rows_by_name(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_builtins_listed_with_missing_credentials(gpuctl):
    rows = rows_by_name(gpuctl("providers", "--json"))
    assert set(rows) == {"runpod", "lambda", "aws", "ssh"}
    for name in ("runpod", "lambda", "aws"):
        assert rows[name]["status"] == "ok"
        assert rows[name]["credentials"] == "missing"
        assert rows[name]["package"] == "gpuctl"
    assert rows["ssh"]["credentials"] == "present"
    assert rows["ssh"]["credential_source"] == "none needed"
    assert "RUNPOD_API_KEY" in rows["runpod"]["hint"]
    assert "LAMBDA_API_KEY" in rows["lambda"]["hint"]


def test_credentials_present_from_env_config_and_aws_profile(gpuctl, monkeypatch, isolated):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpk-secret-value-12345")
    gpuctl("config", "set", "lambda.api_key", "lambda-secret-value-6789")
    aws_dir = isolated.parent / "home" / ".aws"
    aws_dir.mkdir()
    (aws_dir / "credentials").write_text("[work]\naws_access_key_id = AKIA\naws_secret_access_key = x\n")
    monkeypatch.setenv("AWS_PROFILE", "work")
    result = gpuctl("providers", "--json")
    rows = rows_by_name(result)
    assert rows["runpod"]["credentials"] == "present"
    assert rows["runpod"]["credential_source"] == "env RUNPOD_API_KEY"
    assert rows["lambda"]["credential_source"] == "config lambda.api_key"
    assert rows["aws"]["credential_source"] == "aws profile work"
    assert "rpk-secret-value-12345" not in result.stdout
    assert "lambda-secret-value-6789" not in result.stdout


def test_aws_profile_missing_from_files_is_missing(gpuctl, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "nosuch")
    assert rows_by_name(gpuctl("providers", "--json"))["aws"]["credentials"] == "missing"


def test_table_output(gpuctl):
    result = gpuctl("providers")
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0].split()
    assert header[:4] == ["PROVIDER", "PACKAGE", "STATUS", "CREDENTIALS"]


def test_broken_plugin_does_not_break_the_rest():
    eps = [
        EntryPoint("runpod", "gpuctl.providers.runpod.provider:RunPodProvider", ENTRY_POINT_GROUP),
        EntryPoint("ghost", "no_such_module_xyz:Provider", ENTRY_POINT_GROUP),
        EntryPoint("notaprovider", "gpuctl.errors:ExitCode", ENTRY_POINT_GROUP),
    ]
    registry = ProviderRegistry.discover(eps)
    assert registry.names() == ["runpod"]
    broken = {b.name: b.error for b in registry.broken}
    assert broken["ghost"].startswith("ModuleNotFoundError")
    assert "not a gpuctl Provider subclass" in broken["notaprovider"]
    info = {row.name: row for row in registry.info()}
    assert info["ghost"].status == "broken"


def test_third_party_plugin_through_entry_points(tmp_path, subprocess_env):
    """A separately installed distribution adds one working and one broken provider."""
    site = tmp_path / "site"
    (site / "acme_gpus").mkdir(parents=True)
    (site / "acme_gpus" / "__init__.py").write_text(textwrap.dedent("""
        from gpuctl.providers.base import Provider

        class AcmeProvider(Provider):
            name = "acme"
            display_name = "Acme GPUs"

            def offers(self, query):
                return []
    """))
    dist = site / "acme_gpus-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-gpus\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacme = acme_gpus:AcmeProvider\nbroken = acme_gpus.missing:Nope\n")
    env = {**subprocess_env, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-m", "gpuctl", "providers", "--json"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["acme"]["status"] == "ok"
    assert rows["acme"]["package"] == "acme-gpus"
    assert rows["acme"]["version"] == "1.2.3"
    assert rows["acme"]["credentials"] == "present"
    assert rows["broken"]["status"] == "broken"
    assert "warning: provider plugin 'broken' failed to load" in result.stderr
    assert {"runpod", "lambda", "aws"} <= set(rows)
