"""Weights: file selection, the hub client, the fetcher (run in-process on a temp cache), events, specs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gpuctl.engines import build_engine_spec
from gpuctl.errors import CredentialsError, ExitCode, NotFoundError, ProviderError, UsageError
from gpuctl.host.errors import HostError
from gpuctl.models.engine import EngineOptions
from gpuctl.recipes import resolve_model
from gpuctl.weights import fetcher, serve_from_cache
from gpuctl.weights.ensure import progress_renderer
from gpuctl.weights.hub import read_file, repo_info
from gpuctl.weights.models import HubFile, Manifest, RepoInfo
from gpuctl.weights.refs import resolve_ref
from gpuctl.weights.remote import FetcherRun, fetcher_error, parse_event
from gpuctl.weights.remote import _exit_code as remote_exit_code
from gpuctl.weights.selection import build_manifest
from tests.standins.hub_server import GOOD_TOKEN, HubRepo, HubServer, pickle_only_model, tiny_model

COMMIT = "c" * 40


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        server.add(tiny_model("test-org/tiny-llama"))
        server.add(tiny_model("test-org/gated-llama", gated=True, seed=1))
        server.add(pickle_only_model("test-org/pickle-only"))
        yield server


def manifest_of(hub: HubServer, repo: str, *, token: str | None = None, allow_pickle: bool = False) -> Manifest:
    info = repo_info(repo, "main", token=token, endpoint=hub.url)
    return build_manifest(info, "main", allow_pickle=allow_pickle,
                          read_index=lambda name: read_file(repo, info.commit, name, token=token, endpoint=hub.url))


def fetch(capsys: pytest.CaptureFixture[str], cache: Path, hub: HubServer, manifest: Manifest,
          token: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, list[dict[str, Any]]]:
    job = cache.parent / "job.json"
    job.write_text(json.dumps({"endpoint": hub.url, "manifest": manifest.model_dump(mode="json"), "workers": 2}))
    if token and monkeypatch:
        monkeypatch.setenv("HF_TOKEN", token)
    code = fetcher.main(["fetch", "--cache", str(cache), "--job", str(job)])
    return code, events(capsys)


def events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [e for e in map(parse_event, capsys.readouterr().out.splitlines()) if e is not None]


def last(found: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return [e for e in found if e["e"] == kind][-1]


# -- selection -----------------------------------------------------------------------------------------
def _info(*names: str, lfs: tuple[str, ...] = (".safetensors", ".bin")) -> RepoInfo:
    files = [HubFile(name=n, size=10, blob_id="b" * 40, lfs_sha256="a" * 64 if n.endswith(lfs) else None)
             for n in names]
    return RepoInfo(repo="org/m", commit=COMMIT, gated=False, files=files)


def test_the_index_picks_the_shards_and_support_files_ride_along() -> None:
    info = _info("config.json", "model-1.safetensors", "model-2.safetensors", "consolidated.safetensors",
                 "model.safetensors.index.json", "tokenizer.json", "tokenizer.model", "README.md",
                 "original/consolidated.00.pth", "generation_config.json", "chat_template.jinja", "sub/config.json")
    index = {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors", "c": "model-1.safetensors"}}
    manifest = build_manifest(info, "main", allow_pickle=False, read_index=lambda name: json.dumps(index).encode())
    assert [f.name for f in manifest.files] == [
        "chat_template.jinja", "config.json", "generation_config.json", "model-1.safetensors", "model-2.safetensors",
        "model.safetensors.index.json", "tokenizer.json", "tokenizer.model"]
    by_name = {f.name: f for f in manifest.files}
    assert (by_name["model-1.safetensors"].algo, by_name["model-1.safetensors"].digest) == ("sha256", "a" * 64)
    assert (by_name["config.json"].algo, by_name["config.json"].digest) == ("git-blob-sha1", "b" * 40)
    assert (manifest.format, manifest.commit, manifest.revision) == ("safetensors", COMMIT, "main")


def test_without_an_index_every_top_level_safetensors_file_is_taken() -> None:
    manifest = build_manifest(_info("config.json", "model.safetensors", "extra/model.safetensors"), "main",
                              allow_pickle=False, read_index=lambda name: pytest.fail("no index to read"))
    assert [f.name for f in manifest.files] == ["config.json", "model.safetensors"]


def test_pickle_only_weights_are_refused_unless_allowed() -> None:
    info = _info("config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
                 "pytorch_model.bin.index.json", "training_args.bin")
    index = json.dumps({"weight_map": {"a": "pytorch_model-00001-of-00002.bin",
                                       "b": "pytorch_model-00002-of-00002.bin"}}).encode()
    with pytest.raises(UsageError) as caught:
        build_manifest(info, "main", allow_pickle=False, read_index=lambda name: index)
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == (
        f"org/m@{COMMIT[:12]} has only pickled weights (pytorch_model-00001-of-00002.bin, "
        "pytorch_model-00002-of-00002.bin): loading a pickle can run arbitrary code")
    assert "--allow-pickle" in caught.value.hint
    allowed = build_manifest(info, "main", allow_pickle=True, read_index=lambda name: index)
    assert allowed.format == "pickle"
    assert [f.name for f in allowed.files] == ["config.json", "pytorch_model-00001-of-00002.bin",
                                               "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"]


@pytest.mark.parametrize(("names", "error", "message"), [
    (("config.json", "model.Q4_K_M.gguf"), NotFoundError, "has no safetensors weights (it has gguf files)"),
    (("model.safetensors",), NotFoundError, "has no config.json"),
    (("config.json", "a.safetensors", "model.safetensors.index.json"), ProviderError, "names shards the repo lacks: b"),
])
def test_repos_gpuctl_cannot_serve(names: tuple[str, ...], error: type[Exception], message: str) -> None:
    index = json.dumps({"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}}).encode()
    with pytest.raises(error) as caught:
        build_manifest(_info(*names), "main", allow_pickle=False, read_index=lambda name: index)
    assert message in caught.value.message  # type: ignore[attr-defined]


def test_model_references_resolve_without_the_hub() -> None:
    recipe = resolve_model("qwen2.5-7b")
    assert resolve_ref("qwen2.5-7b") == (recipe.repo, recipe.revision)
    assert resolve_ref("hf:org/m@v1") == ("org/m", "v1")
    assert resolve_ref("org/m") == ("org/m", "main")


# -- the hub client --------------------------------------------------------------------------------------
def test_repo_info_reads_commit_gating_sizes_and_digests(hub: HubServer) -> None:
    model = hub.repos["test-org/tiny-llama"]
    info = repo_info(model.repo, "main", token=None, endpoint=hub.url)
    assert (info.commit, info.gated) == (model.commit, False)
    files = {f.name: f for f in info.files}
    shard = model.files["model-00001-of-00003.safetensors"]
    assert files["model-00001-of-00003.safetensors"].size == len(shard)
    assert files["model-00001-of-00003.safetensors"].lfs_sha256 == hashlib.sha256(shard).hexdigest()
    assert files["config.json"].lfs_sha256 is None
    assert repo_info("test-org/gated-llama", "main", token=None, endpoint=hub.url).gated is True


@pytest.mark.parametrize(("repo", "revision", "token", "error", "code", "message"), [
    ("test-org/nope", "main", None, NotFoundError, 3, "test-org/nope does not exist on the hub, or is private"),
    ("test-org/tiny-llama", "v9", None, NotFoundError, 3, "test-org/tiny-llama has no revision 'v9'"),
    ("test-org/gated-llama", "main", None, CredentialsError, 6, "is gated and no Hugging Face token is set"),
    ("test-org/gated-llama", "main", "hf_bad", CredentialsError, 6, "HF_TOKEN has no access to the gated repo"),
])
def test_hub_errors_map_to_exit_codes(hub: HubServer, repo: str, revision: str, token: str | None,
                                      error: type[Exception], code: int, message: str) -> None:
    with pytest.raises(error) as caught:
        repo_info(repo, revision, token=token, endpoint=hub.url)
        read_file(repo, revision, "config.json", token=token, endpoint=hub.url)
    assert caught.value.exit_code == code  # type: ignore[attr-defined]
    assert message in caught.value.message  # type: ignore[attr-defined]


def test_an_unreachable_hub_is_a_provider_error() -> None:
    with pytest.raises(ProviderError) as caught:
        repo_info("org/m", "main", token=None, endpoint="http://127.0.0.1:9")
    assert caught.value.message == "cannot reach the Hugging Face hub at 127.0.0.1:9 (ConnectError)"


# -- the fetcher -------------------------------------------------------------------------------------------
def test_a_fetch_writes_huggingface_hubs_layout_then_reuses_it(hub: HubServer, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    model = hub.repos["test-org/tiny-llama"]
    manifest = manifest_of(hub, model.repo)
    cache = tmp_path / "cache"
    hub.clear_log()
    code, found = fetch(capsys, cache, hub, manifest)
    assert code == 0
    assert last(found, "plan") == {"e": "plan", "files": 9, "total": manifest.total_bytes,
                                   "need": manifest.total_bytes, "missing": 9}
    assert last(found, "done")["downloaded"] == manifest.total_bytes == hub.bytes_sent()
    root = cache / "hub" / "models--test-org--tiny-llama"
    assert (root / "refs" / "main").read_text() == model.commit
    for entry in manifest.files:
        link = root / "snapshots" / model.commit / entry.name
        assert os.readlink(link) == f"../../blobs/{entry.digest}"
        assert link.read_bytes() == model.files[entry.name]
    stored = Manifest.model_validate_json((cache / "gpuctl/manifests/models--test-org--tiny-llama"
                                           / f"{model.commit}.json").read_text())
    assert stored == manifest
    hub.clear_log()
    code, found = fetch(capsys, cache, hub, manifest)
    assert (code, last(found, "done")["downloaded"], last(found, "done")["reused"]) == (0, 0, manifest.total_bytes)
    assert hub.log == []


def test_huggingface_hub_loads_the_cache_offline(hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model = hub.repos["test-org/tiny-llama"]
    assert fetch(capsys, tmp_path / "cache", hub, manifest_of(hub, model.repo))[0] == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "cache"))
    import huggingface_hub  # a test extra: missing, it fails rather than skips
    for revision in ("main", model.commit):
        path = huggingface_hub.hf_hub_download(model.repo, "model-00002-of-00003.safetensors", revision=revision,
                                               cache_dir=str(tmp_path / "cache" / "hub"))
        assert Path(path).read_bytes() == model.files["model-00002-of-00003.safetensors"]


def test_a_partial_file_resumes_with_a_range_request(hub: HubServer, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = hub.repos["test-org/tiny-llama"]
    manifest = manifest_of(hub, model.repo)
    shard = next(f for f in manifest.files if f.name == "model-00001-of-00003.safetensors")
    blobs = tmp_path / "cache" / "hub" / "models--test-org--tiny-llama" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{shard.digest}.incomplete").write_bytes(model.files[shard.name][:100_000])
    hub.clear_log()
    code, found = fetch(capsys, tmp_path / "cache", hub, manifest)
    assert code == 0 and last(found, "done")["resumed"] == [shard.name]
    [resumed] = [h for h in hub.downloads() if h.range]
    assert (resumed.range, resumed.status, resumed.sent) == ("bytes=100000-", 206, shard.size - 100_000)
    assert last(found, "plan")["need"] == manifest.total_bytes - 100_000


def test_a_corrupted_partial_file_is_discarded_and_fetched_whole(hub: HubServer, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = hub.repos["test-org/tiny-llama"]
    manifest = manifest_of(hub, model.repo)
    shard = next(f for f in manifest.files if f.name == "model-00001-of-00003.safetensors")
    blobs = tmp_path / "cache" / "hub" / "models--test-org--tiny-llama" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{shard.digest}.incomplete").write_bytes(b"\0" * 100_000)  # right length, wrong bytes
    code, found = fetch(capsys, tmp_path / "cache", hub, manifest)
    assert code == 0
    assert any(e["e"] == "retry" and "wrong sha256" in e["message"] for e in found)
    assert (blobs / shard.digest).read_bytes() == model.files[shard.name]


def test_a_wrong_digest_fails_after_the_retries(hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = manifest_of(hub, "test-org/tiny-llama")
    bad = manifest.model_copy(update={"files": [f.model_copy(update={"digest": "0" * 64}) if f.algo == "sha256"
                                                else f for f in manifest.files[:3]]})
    monkeypatch.setattr(fetcher, "ATTEMPTS", 2)
    code, found = fetch(capsys, tmp_path / "cache", hub, bad)
    assert code == 1
    error = last(found, "error")
    assert error["kind"] == "mismatch" and "does not match the hub's digest after 2 attempts" in error["message"]
    assert not list((tmp_path / "cache" / "hub" / "models--test-org--tiny-llama" / "blobs").glob("0*"))


def test_no_room_on_the_disk_fails_before_downloading(hub: HubServer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetcher.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=0, free=1000))
    manifest = manifest_of(hub, "test-org/tiny-llama")
    hub.clear_log()
    code, found = fetch(capsys, tmp_path / "cache", hub, manifest)
    assert code == 1 and last(found, "error")["kind"] == "disk"
    assert hub.bytes_sent() == 0


def test_the_token_goes_to_the_hub_but_not_to_the_storage(hub: HubServer, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = manifest_of(hub, "test-org/gated-llama", token=GOOD_TOKEN)
    hub.clear_log()
    code, _ = fetch(capsys, tmp_path / "cache", hub, manifest, token=GOOD_TOKEN, monkeypatch=monkeypatch)
    assert code == 0
    assert all(h.authorized for h in hub.log if "/resolve/" in h.path)
    assert [h.authorized for h in hub.log if h.path.startswith("/cdn/")] == [False] * 3


def test_verify_ls_and_rm(hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = hub.repos["test-org/tiny-llama"]
    manifest = manifest_of(hub, model.repo)
    cache = tmp_path / "cache"
    assert fetch(capsys, cache, hub, manifest)[0] == 0
    blobs = cache / "hub" / "models--test-org--tiny-llama" / "blobs"
    shard = {f.name: f for f in manifest.files}
    (blobs / shard["model-00001-of-00003.safetensors"].digest).write_bytes(b"x")
    (blobs / shard["config.json"].digest).unlink()
    (cache / "hub" / "models--other--engine-left" / "blobs").mkdir(parents=True)
    (cache / "hub" / "models--other--engine-left" / "blobs" / "abc").write_bytes(b"12345")

    assert fetcher.main(["verify", "--cache", str(cache)]) == 1
    verified = last(events(capsys), "verified")
    assert (verified["missing"], verified["corrupt"]) == (["config.json"], ["model-00001-of-00003.safetensors"])
    assert not (blobs / shard["model-00001-of-00003.safetensors"].digest).exists()  # removed: fetched again later

    assert fetcher.main(["ls", "--cache", str(cache)]) == 0
    listed = {e["repo"]: e for e in events(capsys) if e["e"] == "repo"}
    assert listed["other/engine-left"] == {"e": "repo", "repo": "other/engine-left", "commits": [], "refs": {},
                                           "size": 5, "files": 1, "complete": False, "managed": False,
                                           "partial": 0}
    mine = listed["test-org/tiny-llama"]
    assert (mine["commits"], mine["refs"], mine["files"], mine["complete"], mine["managed"]) == (
        [model.commit], {"main": model.commit}, 9, False, True)

    assert fetcher.main(["rm", "--cache", str(cache), "--repo", model.repo]) == 0
    removed = last(events(capsys), "removed")
    left = manifest.total_bytes - shard["model-00001-of-00003.safetensors"].size - shard["config.json"].size
    assert removed["existed"] is True and removed["freed"] == left + len(model.commit)  # the blobs and refs/main
    assert not (cache / "hub" / "models--test-org--tiny-llama").exists()
    assert fetcher.manifests(str(cache)) == []


def test_a_busy_repo_cannot_be_verified_or_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fetcher.RepoLock(str(tmp_path), "org/m"):
        assert fetcher.main(["rm", "--cache", str(tmp_path), "--repo", "org/m"]) == fetcher.EXIT_BUSY
    assert last(events(capsys), "error")["kind"] == "busy"


# -- events, errors and the engine spec -----------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def info(self, message: str) -> None:
        self.calls.append(("info", message))

    def warn(self, message: str) -> None:
        self.calls.append(("warn", message))

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        yield

    @contextmanager
    def transfer(self, message: str, total: int) -> Iterator[Any]:
        self.calls.append(("start", (message, total)))
        yield lambda done: self.calls.append(("done", done))
        self.calls.append(("end", message))


def test_fetcher_events_become_a_transfer_and_warnings() -> None:
    from contextlib import ExitStack

    recorder = Recorder()
    with ExitStack() as stack:
        on_event = progress_renderer(recorder, stack, "org/m")
        for event in ({"e": "plan", "need": 300, "files": 3}, {"e": "progress", "done": 100},
                      {"e": "corrupt", "message": "a does not match"}, {"e": "progress", "done": 300},
                      {"e": "done"}):
            on_event(event)
    assert recorder.calls == [("start", ("downloading org/m", 300)), ("done", 100), ("warn", "a does not match"),
                              ("done", 300), ("end", "downloading org/m")]
    nothing = Recorder()
    with ExitStack() as stack:
        progress_renderer(nothing, stack, "org/m")({"e": "plan", "need": 0, "files": 9})
    assert nothing.calls == [("info", "org/m: all 9 files already cached and verified")]


def test_parse_event_ignores_other_output() -> None:
    assert parse_event('@gpuctl-weights {"e": "done"}') == {"e": "done"}
    assert parse_event("Traceback (most recent call last):") is None
    assert parse_event("@gpuctl-weights {broken") is None


@pytest.mark.parametrize(("kind", "error", "code", "text"), [
    ("gated", CredentialsError, 6, "HF_TOKEN has no access to the gated repo org/m"),
    ("not_found", NotFoundError, 3, "nope"),
    ("disk", HostError, 4, "not enough disk for org/m on h: nope"),
    ("mismatch", ProviderError, 4, "downloading org/m to h failed: nope"),
    ("busy", HostError, 4, "org/m is in use on h"),
])
def test_fetcher_failures_map_to_exit_codes(kind: str, error: type[Exception], code: int, text: str) -> None:
    run = FetcherRun(exit_code=1, events=[{"e": "error", "kind": kind, "message": "nope"}])
    found = fetcher_error(run, "org/m", "h", token_given=True)
    assert isinstance(found, error) and found.exit_code == code and text in found.message


def test_a_crashed_fetcher_reports_its_last_output() -> None:
    run = FetcherRun(exit_code=1, other_output=["a", "Traceback", "ValueError"])
    assert fetcher_error(run, "org/m", "h", token_given=False).message == (
        "the weights fetcher failed on h: exit 1: a | Traceback | ValueError")


KILLED = "the weights fetcher was stopped on h before it finished"
RESUME = "run the command again: what arrived is kept and the download resumes"


@pytest.mark.parametrize(("code", "how"), [(137, "killed (exit 137)"), (143, "terminated (exit 143)")])
def test_a_fetcher_killed_halfway_says_so_and_that_a_rerun_resumes(code: int, how: str) -> None:
    error = fetcher_error(FetcherRun(exit_code=code, other_output=["Killed"]), "org/m", "h", token_given=False)
    assert (type(error), error.exit_code, error.message, error.hint) == (HostError, 4, f"{KILLED}: {how}", RESUME)


def test_a_fetcher_whose_container_vanished_is_a_killed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # whether docker still shows the killed container (exit 137) or has removed it is a race: one message either way
    docker = SimpleNamespace(shell=SimpleNamespace(where="h"), inspect=lambda name: None)
    with pytest.raises(HostError) as caught:
        remote_exit_code(docker, "gpuctl-weights-0")  # type: ignore[arg-type]
    assert (caught.value.message, caught.value.hint) == (f"{KILLED}: its container was removed", RESUME)


def test_the_engine_serves_from_the_cache_offline_and_read_only() -> None:
    spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions())
    served = serve_from_cache(spec)
    argv = served.docker_run_argv(cache_dir="/c")
    assert argv[argv.index("--volume") + 1] == "/c:/root/.cache/huggingface:ro"
    assert "HF_HUB_OFFLINE=1" in argv and served.env["HF_HUB_OFFLINE"] == "1"
    assert served.args == spec.args and "--load-format" in served.args
    pickled = serve_from_cache(spec, pickle=True)
    assert pickled.args[pickled.args.index("--load-format") + 1] == "pt" and not pickled.safetensors_only
    tgi = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(engine="tgi"))
    assert serve_from_cache(tgi, pickle=True).args == tgi.args


def test_a_repo_without_safetensors_in_the_standin_is_pickle_only(hub: HubServer) -> None:
    with pytest.raises(UsageError, match="only pickled weights"):
        manifest_of(hub, "test-org/pickle-only")
    assert manifest_of(hub, "test-org/pickle-only", allow_pickle=True).format == "pickle"


def test_standin_models_are_valid_safetensors() -> None:
    repo: HubRepo = tiny_model("x/y")
    data = repo.files["model-00001-of-00003.safetensors"]
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    end = max(t["data_offsets"][1] for k, t in header.items() if k != "__metadata__")
    assert header_len % 8 == 0 and 8 + header_len + end == len(data)


def test_ls_reads_with_the_hosts_python_else_in_the_engine_image(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.weights import manage
    from tests.fakehost.shells import ScriptedShell

    event = {"e": "repo", "repo": "org/m", "commits": [COMMIT], "refs": {}, "size": 7, "files": 2, "complete": True,
             "managed": True, "partial": 0}
    line = fetcher.EVENT_PREFIX + json.dumps(event)
    in_image: list[str] = []

    def fake_run(docker: object, command: str, **kwargs: Any) -> FetcherRun:
        in_image.append(command)
        return FetcherRun(exit_code=0, events=[parse_event(line)])  # type: ignore[list-item]

    monkeypatch.setattr(manage, "run_fetcher", fake_run)
    direct = ScriptedShell().on("python3", "-", "ls", stdout=line + "\n")
    [row] = manage.list_cached(DockerEngine(direct), image="img", cache_dir="/c")
    assert (row.repo, row.size_bytes, row.cache_dir, in_image) == ("org/m", 7, "/c", [])
    assert direct.calls[0].input == Path(fetcher.__file__).read_bytes()

    without_python = ScriptedShell()  # python3: command not found
    [row] = manage.list_cached(DockerEngine(without_python), image="img")
    assert row.repo == "org/m" and in_image == ["ls"]
