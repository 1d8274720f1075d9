"""``gpuctl env NAME``: export lines for OpenAI clients, the only place the API key is shown."""

from __future__ import annotations

from pathlib import Path

from gpuctl.deploy.secrets import create_api_key
from tests.fakehost.cloud import Cloud, add_deployment


def test_public_deployment_with_its_key(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "pub", endpoint="http://203.0.113.7:8000", public=True)
    key = create_api_key(isolated / ".gpuctl", "pub")
    result = gpuctl("env", "pub")
    assert result.exit_code == 0
    assert result.stdout == f"export OPENAI_BASE_URL=http://203.0.113.7:8000/v1\nexport OPENAI_API_KEY={key}\n"
    assert result.stderr == ""


def test_private_deployment_has_no_key_and_needs_a_tunnel(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "priv", endpoint="http://127.0.0.1:8001", tunnel=True, host="ubuntu@gpu-box",
                   host_port=8001)
    result = gpuctl("env", "priv")
    assert result.stdout == "export OPENAI_BASE_URL=http://127.0.0.1:8001/v1\nexport OPENAI_API_KEY=EMPTY\n"
    assert "keep 'gpuctl ssh priv --tunnel' running while you use it" in result.stderr


def test_values_are_shell_quoted(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "odd", endpoint="https://pod-1.example/x y")
    assert gpuctl("env", "odd").stdout.splitlines()[0] == "export OPENAI_BASE_URL='https://pod-1.example/x y/v1'"


def test_refusals(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "booting", status="starting")
    not_ready = gpuctl("env", "booting")
    assert not_ready.exit_code == 2 and "'booting' has no endpoint (status starting)" in not_ready.stderr
    unknown = gpuctl("env", "nope")
    assert unknown.exit_code == 3 and "no deployment named 'nope' (active: booting)" in unknown.stderr
    assert unknown.stdout == ""
