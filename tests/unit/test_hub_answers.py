"""The hub's real answers, read right on both sides: the fetcher on the GPU host and the clients on this machine.

Each answer is served by the stand-in hub exactly as huggingface.co sends it (shapes and sources in
``tests/standins/hub_server.py``): a renamed repo's same-host ``307`` with a relative ``Location``, a
rejected token's ``401 Invalid credentials in Authorization header``, ``X-Error-Code`` on every error,
and ``429`` / ``503`` with ``RateLimit`` / ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.errors import CredentialsError, ExitCode, NotFoundError, ProviderError
from gpuctl.recipes.hub import fetch_hf_config
from gpuctl.weights import fetcher
from gpuctl.weights import hub as hub_client
from gpuctl.weights.hub import read_file, repo_info
from gpuctl.weights.preflight import model_manifest
from gpuctl.weights.remote import FetcherRun, fetcher_error
from tests.standins.hub_server import EXPIRED_TOKEN, GOOD_TOKEN, HubServer, tiny_model
from tests.unit.test_weights_core import fetch, last, manifest_of

OLD, NEW = "test-org/llama-old-name", "test-org/llama-new-name"


@pytest.fixture
def hub(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add(tiny_model("test-org/tiny-llama"))
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits of every retry, on both sides, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(fetcher, "pause", lambda stop, seconds: slept.append(seconds))
    monkeypatch.setattr(hub_client, "pause", slept.append)
    return slept


def run_of(found: list[dict]) -> FetcherRun:
    return FetcherRun(exit_code=1, events=found)


# -- a renamed repo: the hub's own redirect keeps the token ---------------------------------------------
def test_a_renamed_gated_repo_is_fetched_with_the_token_through_the_hubs_redirect(
        hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add(tiny_model(OLD, gated=True, seed=5))
    hub.rename(OLD, NEW)
    manifest = model_manifest(OLD, "main", token=GOOD_TOKEN, allow_pickle=False)  # preflight on this machine
    assert manifest is not None and manifest.repo == OLD
    hub.clear_log()
    code, found = fetch(capsys, tmp_path / "cache", hub, manifest, token=GOOD_TOKEN, monkeypatch=monkeypatch)
    assert code == 0, last(found, "error")
    old = [h for h in hub.log if h.path.startswith(f"/{OLD}/")]
    new = [h for h in hub.log if h.path.startswith(f"/{NEW}/")]
    assert old and {h.status for h in old} == {307} and all(h.authorized for h in old)
    assert new and all(h.authorized for h in new)  # same host: the token follows the redirect
    cdn = [h for h in hub.log if h.path.startswith("/cdn/")]
    assert cdn and not any(h.authorized for h in cdn)  # another host: it never does
    snapshot = tmp_path / "cache" / "hub" / fetcher.repo_folder(OLD) / "snapshots" / manifest.commit
    assert (snapshot / "config.json").read_bytes() == hub.repos[NEW].files["config.json"]


def test_the_token_is_dropped_when_the_hub_redirects_to_another_host(hub: HubServer, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add(tiny_model(OLD, seed=6))
    hub.rename(OLD, NEW)
    manifest = manifest_of(hub, OLD, token=GOOD_TOKEN)
    hub.clear_log()
    code, _ = fetch(capsys, tmp_path / "cache", hub, manifest, token=GOOD_TOKEN, monkeypatch=monkeypatch)
    assert code == 0
    assert [h.status for h in hub.log if h.path.startswith("/cdn/")] == [200] * 3  # the 3 shards
    assert not any(h.authorized for h in hub.log if h.path.startswith("/cdn/"))


# -- a rejected token is a credentials problem (6), not a missing repo (3) ------------------------------
def test_an_expired_token_is_reported_as_rejected_by_the_fetcher(hub: HubServer, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = manifest_of(hub, "test-org/tiny-llama")
    code, found = fetch(capsys, tmp_path / "cache", hub, manifest, token=EXPIRED_TOKEN, monkeypatch=monkeypatch)
    assert code == 1 and last(found, "error")["kind"] == "token"
    error = fetcher_error(run_of(found), "test-org/tiny-llama", "h", token_given=True)
    assert isinstance(error, CredentialsError) and error.exit_code == ExitCode.CREDENTIALS
    assert error.message == "the Hugging Face hub rejected HF_TOKEN (invalid, expired or revoked)"
    assert "settings/tokens" in (error.hint or "")


@pytest.mark.parametrize("call", ["repo_info", "read_file", "fetch_hf_config"])
def test_an_expired_token_is_reported_as_rejected_on_this_machine(hub: HubServer, call: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        if call == "repo_info":
            repo_info("test-org/tiny-llama", "main", token=EXPIRED_TOKEN, endpoint=hub.url)
        elif call == "read_file":
            read_file("test-org/tiny-llama", "main", "config.json", token=EXPIRED_TOKEN, endpoint=hub.url)
        else:
            fetch_hf_config("test-org/tiny-llama", "main", token=EXPIRED_TOKEN)
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert caught.value.message == "the Hugging Face hub rejected HF_TOKEN (invalid, expired or revoked)"


# -- X-Error-Code says what is wrong --------------------------------------------------------------------------
@pytest.mark.parametrize(("repo", "revision", "token", "error", "message"), [
    ("test-org/tiny-lama", "main", None, NotFoundError, "test-org/tiny-lama does not exist on the hub, or is private"),
    ("test-org/tiny-lama", "main", GOOD_TOKEN, NotFoundError, "test-org/tiny-lama does not exist on the hub"),
    ("test-org/tiny-llama", "v9", None, NotFoundError, "test-org/tiny-llama has no revision 'v9'"),
    ("test-org/gated", "main", None, CredentialsError, "test-org/gated is gated and no Hugging Face token is set"),
    ("test-org/gated", "main", "hf_other", CredentialsError, "HF_TOKEN has no access to the gated repo test-org/gated"),
])
def test_an_ad_hoc_model_reads_the_hubs_error_code(hub: HubServer, repo: str, revision: str, token: str | None,
                                                   error: type[Exception], message: str) -> None:
    hub.add(tiny_model("test-org/gated", gated=True, seed=2))
    with pytest.raises(error) as caught:
        fetch_hf_config(repo, revision, token=token)
    assert caught.value.message.startswith(message)  # type: ignore[attr-defined]


def test_a_missing_config_json_is_named(hub: HubServer) -> None:
    model = tiny_model("test-org/no-config", seed=4)
    del model.files["config.json"]
    hub.add(model)
    with pytest.raises(NotFoundError) as caught:
        fetch_hf_config("test-org/no-config", "main")
    assert caught.value.message == "test-org/no-config has no config.json at revision main"


def test_a_refusal_that_is_not_gating_says_what_the_hub_said(hub: HubServer) -> None:
    hub.fail(403, on="/api/", message="Access to this resource is disabled.")
    with pytest.raises(CredentialsError) as caught:
        repo_info("test-org/tiny-llama", "main", token=GOOD_TOKEN, endpoint=hub.url)
    assert caught.value.message == "the hub refused test-org/tiny-llama: Access to this resource is disabled."


# -- 429 and 5xx are retried, as long as the hub asks for a bounded wait ------------------------------------
def test_the_fetcher_waits_out_a_rate_limit_and_an_outage(hub: HubServer, tmp_path: Path, waits: list[float],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    manifest = manifest_of(hub, "test-org/tiny-llama")
    shard = manifest.model_copy(update={"files": [f for f in manifest.files if f.name.startswith("model-00001")]})
    hub.fail(429, times=2, on="/resolve/", reset=7)
    hub.fail(503, times=1, on="/cdn/", retry_after=3)
    hub.fail(502, times=1, on="/cdn/")
    code, found = fetch(capsys, tmp_path / "cache", hub, shard)
    assert code == 0, last(found, "error")
    assert waits == [7.0, 7.0, 3.0, 8.0]  # RateLimit's t, Retry-After, else a backoff (1, 2, 4, 8 s at most)
    retries = [e["message"] for e in found if e["e"] == "retry"]
    assert sum("HTTP 429" in m for m in retries) == 2 and any("HTTP 503" in m for m in retries)


def test_the_fetcher_gives_up_after_bounded_retries(hub: HubServer, tmp_path: Path, waits: list[float],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest = manifest_of(hub, "test-org/tiny-llama")
    small = manifest.model_copy(update={"files": [f for f in manifest.files if f.name == "config.json"]})
    hub.fail(503, times=100, on="/resolve/")
    code, found = fetch(capsys, tmp_path / "cache", hub, small)
    assert code == 1
    error = last(found, "error")
    assert error["kind"] == "http" and "HTTP 503" in error["message"]
    assert len(waits) == fetcher.HTTP_RETRIES and max(waits) <= 8
    assert fetcher_error(run_of(found), "r", "h", token_given=False).exit_code == ExitCode.PROVIDER


def test_the_fetcher_does_not_wait_longer_than_the_hubs_window(hub: HubServer, tmp_path: Path, waits: list[float],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    manifest = manifest_of(hub, "test-org/tiny-llama")
    hub.fail(503, times=100, on="/resolve/", retry_after=3600)
    code, found = fetch(capsys, tmp_path / "cache", hub, manifest)
    assert (code, waits) == (1, [])
    assert "asks to wait 3600 s" in last(found, "error")["message"]


def test_the_clients_here_retry_too(hub: HubServer, waits: list[float]) -> None:
    hub.fail(429, times=1, on="/api/", reset=2)
    hub.fail(503, times=1, on="/resolve/", retry_after=1)
    assert repo_info("test-org/tiny-llama", "main", token=None, endpoint=hub.url).commit
    assert fetch_hf_config("test-org/tiny-llama", "main")["model_type"] == "llama"
    assert waits == [2.0, 1.0]


def test_the_clients_here_give_up_with_a_provider_error(hub: HubServer, waits: list[float]) -> None:
    hub.fail(429, times=100, on="/api/", reset=5)
    with pytest.raises(ProviderError) as caught:
        repo_info("test-org/tiny-llama", "main", token=None, endpoint=hub.url)
    assert caught.value.exit_code == ExitCode.PROVIDER
    assert caught.value.message == "the Hugging Face hub is rate-limiting requests for test-org/tiny-llama (HTTP 429)"
    assert waits == [5.0] * hub_client.RETRIES
