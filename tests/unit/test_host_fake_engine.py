"""The fake engine image's entry point understands the command lines gpuctl's engine specs produce."""

from __future__ import annotations

import pytest

from gpuctl.engines import build_engine_spec
from gpuctl.models.engine import EngineOptions
from gpuctl.recipes import resolve_model
from tests.fakehost.engine_shim import translate


def test_vllm_spec_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-from-env")
    monkeypatch.delenv("FAKE_ENGINE_MOCK_ARGS", raising=False)
    spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(engine="vllm", api_key=True))
    assert spec.entrypoint is not None
    argv = [*spec.entrypoint[1:], *spec.args]  # what follows the 'vllm' executable
    assert translate(argv) == (["--host", "0.0.0.0", "--port", "8000", "--model", "Qwen/Qwen2.5-7B-Instruct",
                                "--api-key", "sk-from-env"], "Qwen/Qwen2.5-7B-Instruct")


def test_tgi_spec_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setenv("API_KEY", "tgi-key")
    monkeypatch.setenv("FAKE_ENGINE_MOCK_ARGS", "--ttft-ms 25")
    spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(engine="tgi", api_key=True))
    assert spec.entrypoint is None
    assert translate(spec.args) == (["--host", "0.0.0.0", "--port", "80", "--model", "Qwen/Qwen2.5-7B-Instruct",
                                     "--api-key", "tgi-key", "--ttft-ms", "25"], "Qwen/Qwen2.5-7B-Instruct")


def test_served_model_name_and_inline_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VLLM_API_KEY", "API_KEY", "FAKE_ENGINE_MOCK_ARGS"):
        monkeypatch.delenv(name, raising=False)
    mock, model = translate(["serve", "org/base", "--served-model-name=chat", "--port=9000", "--dtype", "auto"])
    assert (mock, model) == (["--host", "0.0.0.0", "--port", "9000", "--model", "chat"], "chat")
