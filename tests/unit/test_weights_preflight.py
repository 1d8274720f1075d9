"""The weights pre-flight: the file list read on this machine before anything is rented."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gpuctl.errors import UsageError
from gpuctl.events import NullReporter
from gpuctl.weights.preflight import model_manifest
from tests.fakehost.cloud import Cloud, make_offer, write_recipe
from tests.standins.hub_server import HubServer, pickle_only_model, tiny_model

REPO = "test-org/tiny-llama"


class Notes(NullReporter):
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture
def hub(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_a_pinned_commit_is_read_from_the_hub_once(hub: HubServer) -> None:
    model = hub.add(tiny_model(REPO))
    first = model_manifest(REPO, model.commit, token=None, allow_pickle=False)
    assert first is not None and first.commit == model.commit and first.format == "safetensors"
    assert {f.name for f in first.files} >= {"config.json", "model.safetensors.index.json"}
    assert hub.log and hub.bytes_sent() < 10_000  # the file list and the index, no weights
    hub.clear_log()
    again = model_manifest(REPO, model.commit, token=None, allow_pickle=False)
    assert again == first and hub.log == []


def test_a_branch_asks_the_hub_every_time(hub: HubServer) -> None:
    hub.add(tiny_model(REPO))
    model_manifest(REPO, "main", token=None, allow_pickle=False)
    hub.clear_log()
    assert model_manifest(REPO, "main", token=None, allow_pickle=False) is not None
    assert any(hit.path.startswith(f"/api/models/{REPO}/revision/main") for hit in hub.log)


def test_pickle_only_is_refused_unless_allowed(hub: HubServer) -> None:
    hub.add(pickle_only_model("test-org/pickled"))
    with pytest.raises(UsageError, match="pickle"):
        model_manifest("test-org/pickled", "main", token=None, allow_pickle=False)
    allowed = model_manifest("test-org/pickled", "main", token=None, allow_pickle=True)
    assert allowed is not None and allowed.format == "pickle"


def test_an_unreachable_hub_warns_and_leaves_it_to_the_host(isolated: Path) -> None:
    notes = Notes()  # HF_ENDPOINT is http://127.0.0.1:9 in every test: nothing listens there
    assert model_manifest(REPO, "main", token=None, allow_pickle=False, reporter=notes) is None
    assert notes.warnings == [f"cannot reach the Hugging Face hub at 127.0.0.1:9 (ConnectError); the host will read "
                              f"the file list of {REPO} itself"]


def test_up_refuses_a_pickle_only_repo_before_the_price_is_even_asked(gpuctl, fake_cloud: Cloud, hub: HubServer,
                                                                      isolated: Path) -> None:
    write_recipe(isolated)
    recipe = yaml.safe_load((isolated / "recipes" / "tiny.yaml").read_text())
    hub.add(dataclasses.replace(pickle_only_model(recipe["repo"]), commit=recipe["revision"]))
    fake_cloud.add_offer(make_offer("fakepod", "pod.l40s", 0.5))
    result = gpuctl("up", "tiny", "--name", "t1", "-y")
    assert result.exit_code == 2 and "pickle" in result.stderr
    assert "deploy t1" not in result.stderr  # the price line comes after the check
    assert fake_cloud.world["launches"] == []
