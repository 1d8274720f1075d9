"""A stand-in for the Hugging Face hub: the parts gpuctl and huggingface_hub use to download a model.

* ``GET /api/models/ORG/NAME/revision/REV[?blobs=true]``: ``sha`` (the commit), ``gated``, and
  ``siblings`` with ``rfilename`` (plus ``size``, ``blobId`` and ``lfs {size, sha256, pointerSize}``
  with ``blobs=true``), as huggingface_hub's ``model_info(files_metadata=True)`` reads them;
* ``GET|HEAD /ORG/NAME/resolve/REV/FILE``: small files answered directly (``ETag`` = git blob id),
  LFS files redirected (302, ``X-Linked-Etag`` = sha256, ``X-Linked-Size``) to ``CDN/cdn/SHA256``,
  always with ``X-Repo-Commit``; errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound,
  EntryNotFound, GatedRepo) like the hub's;
* ``GET CDN/cdn/SHA256``: the LFS storage, on a second port (another origin, as the hub's storage
  is); like a pre-signed URL it refuses a request carrying an ``Authorization`` header (a client
  must not forward the token there). ``Range`` works everywhere.

Every request is logged with the body bytes actually sent, so a test can assert "nothing was
downloaded". With ``auto=True`` any repo asked for exists: a tiny model is made for it on first
request, at the commit asked for when that is a full sha (so pinned recipes resolve).
``stall(sha256, after)`` makes the next download of a blob stop after ``after`` bytes and hold the
connection (to kill a client halfway). Run standalone::

    python -m tests.standins.hub_server --port 8300   # serves test-org/tiny-llama, test-org/pickle-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model")
GOOD_TOKEN = "hf_standinGOODtoken0000"
_API = re.compile(r"^/api/models/([^/]+/[^/]+)/revision/([^/?]+)$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_CDN = re.compile(r"^/cdn/([0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubRepo:
    """One model repo at one commit (also reachable as its branch)."""

    repo: str
    files: dict[str, bytes]
    gated: bool = False
    branch: str = "main"
    commit: str = ""

    def __post_init__(self) -> None:
        if not self.commit:
            digest = hashlib.sha1(self.repo.encode())
            for name in sorted(self.files):
                digest.update(name.encode() + hashlib.sha256(self.files[name]).digest())
            self.commit = digest.hexdigest()

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES) or len(self.files[name]) >= 1 << 20

    def pointer(self, name: str) -> bytes:
        data = self.files[name]
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                f"size {len(data)}\n").encode()

    def sibling(self, name: str, blobs: bool) -> dict[str, object]:
        if not blobs:
            return {"rfilename": name}
        data = self.files[name]
        if not self.is_lfs(name):
            return {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
        pointer = self.pointer(name)
        return {"rfilename": name, "size": len(data), "blobId": git_blob_id(pointer),
                "lfs": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": len(pointer)}}

    def info(self, blobs: bool) -> dict[str, object]:
        return {"_id": hashlib.md5(self.repo.encode()).hexdigest()[:24], "id": self.repo, "modelId": self.repo,
                "sha": self.commit, "private": False, "gated": "manual" if self.gated else False,
                "siblings": [self.sibling(n, blobs) for n in sorted(self.files)]}


@dataclass
class Hit:
    method: str
    path: str
    status: int
    range: str | None
    authorized: bool
    sent: int = 0


@dataclass
class _Stall:
    after: int
    release: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)


class HubServer:
    """The stand-in hub on ``host`` (loopback, or the test's own veth address); ``tokens`` may read gated repos."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tokens: tuple[str, ...] = (GOOD_TOKEN,),
                 auto: bool = False) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.auto = auto
        self.tokens = set(tokens)
        self.log: list[Hit] = []
        self.stalls: dict[str, _Stall] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.cdn_server = ThreadingHTTPServer((host, 0), _handler(self))
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        host, port = self.cdn_server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo: HubRepo) -> HubRepo:
        self.repos[repo.repo] = repo
        return repo

    def start(self) -> HubServer:
        for server in (self.server, self.cdn_server):
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, name="hub-standin", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        for stall in self.stalls.values():
            stall.release.set()
        for server in (self.server, self.cdn_server):
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test knobs and inspection ----------------------------------------------------------------
    def stall(self, sha256: str, after: int) -> _Stall:
        """The next download of the blob ``sha256`` stops after ``after`` bytes until ``release`` is set."""
        self.stalls[sha256] = _Stall(after)
        return self.stalls[sha256]

    def bytes_sent(self) -> int:
        """Body bytes of every file download so far (metadata answers of the API not counted)."""
        with self.lock:
            return sum(h.sent for h in self.log if not h.path.startswith("/api/"))

    def downloads(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.log if h.method == "GET" and not h.path.startswith("/api/") and h.sent]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: the hub keeps its own log
            pass

        def do_HEAD(self) -> None:
            self.route("HEAD")

        def do_GET(self) -> None:
            self.route("GET")

        def route(self, method: str) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            auth = self.headers.get("Authorization", "")
            self.hit = Hit(method, path, 0, self.headers.get("Range"), bool(auth))
            with hub.lock:
                hub.log.append(self.hit)
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
            if match := _API.match(path):
                blobs = parse_qs(url.query).get("blobs", [""])[0].lower() == "true"
                repo = self.find(match.group(1), match.group(2))
                if repo is not None:
                    self.json(200, repo.info(blobs), {})
            elif match := _RESOLVE.match(path):
                self.resolve(method, match.group(1), match.group(2), match.group(3), token)
            elif match := _CDN.match(path):
                self.cdn(method, match.group(1), bool(auth))
            else:
                self.error(404, "EntryNotFound", "no such route")

        def find(self, name: str, revision: str) -> HubRepo | None:
            if hub.auto and name not in hub.repos:
                commit = revision if re.fullmatch(r"[0-9a-f]{40}", revision) else ""
                hub.add(tiny_model(name, commit=commit))
            repo = hub.repos.get(name)
            if repo is None:
                self.error(401, "RepoNotFound", "Repository not found")
                return None
            if revision not in (repo.branch, repo.commit):
                self.error(404, "RevisionNotFound", "Invalid rev id")
                return None
            return repo

        def resolve(self, method: str, name: str, revision: str, filename: str, token: str | None) -> None:
            repo = self.find(name, revision)
            if repo is None:
                return
            if repo.gated and token not in hub.tokens:
                status = 403 if token else 401
                self.error(status, "GatedRepo", f"Access to model {name} is restricted")
                return
            data = repo.files.get(filename)
            if data is None:
                self.error(404, "EntryNotFound", "Entry not found")
                return
            headers = {"X-Repo-Commit": repo.commit}
            if repo.is_lfs(filename):
                sha = hashlib.sha256(data).hexdigest()
                headers.update({"ETag": f'"{git_blob_id(repo.pointer(filename))}"', "X-Linked-Etag": f'"{sha}"',
                                "X-Linked-Size": str(len(data)), "Location": f"{hub.cdn_url}/cdn/{sha}",
                                "Content-Length": "0"})
                self.send(302, headers)
                return
            headers["ETag"] = f'"{git_blob_id(data)}"'
            self.body(method, data, headers)

        def cdn(self, method: str, sha: str, authorized: bool) -> None:
            if authorized:  # as S3 answers a pre-signed URL sent with a second credential
                self.error(400, "InvalidArgument", "Only one auth mechanism allowed")
                return
            for repo in hub.repos.values():
                for data in repo.files.values():
                    if hashlib.sha256(data).hexdigest() == sha:
                        self.body(method, data, {"ETag": f'"{sha}"'}, stall=hub.stalls.pop(sha, None))
                        return
            self.error(404, "EntryNotFound", "no such object")

        def body(self, method: str, data: bytes, headers: dict[str, str], stall: _Stall | None = None) -> None:
            start, status = 0, 200
            match = _RANGE.match(self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    self.send(416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"})
                    return
                end = int(match.group(2)) + 1 if match.group(2) else len(data)
                headers["Content-Range"] = f"bytes {start}-{min(end, len(data)) - 1}/{len(data)}"
                data, status = data[start:end], 206
            headers.update({"Content-Length": str(len(data)), "Accept-Ranges": "bytes",
                            "Content-Type": "application/octet-stream"})
            self.send(status, headers)
            if method == "HEAD":
                return
            for offset in range(0, len(data), 64 * 1024):
                if stall is not None and self.hit.sent >= stall.after:
                    stall.reached.set()
                    stall.release.wait(30)
                    self.close_connection = True
                    return
                chunk = data[offset:offset + 64 * 1024]
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return
                self.hit.sent += len(chunk)

        def json(self, status: int, payload: object, headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            self.send(status, {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))})
            if self.command != "HEAD":
                self.wfile.write(data)

        def error(self, status: int, code: str, message: str) -> None:
            self.json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def send(self, status: int, headers: dict[str, str]) -> None:
            self.hit.status = status
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()

    return Handler


# -- generated models --------------------------------------------------------------------------------
def safetensors_bytes(tensors: dict[str, tuple[list[int], bytes]], dtype: str = "F16") -> bytes:
    """A valid safetensors file: 8-byte header length, JSON header (padded to 8), then the data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(data for _, data in tensors.values())


def _common_files(rng: random.Random) -> dict[str, bytes]:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
              "intermediate_size": 512, "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 4,
              "vocab_size": 512, "max_position_embeddings": 2048, "torch_dtype": "float16"}
    vocab = {f"tok{i}": i for i in range(512)}
    return {
        "config.json": json.dumps(config, indent=2).encode(),
        "generation_config.json": b'{"bos_token_id": 1, "eos_token_id": 2}\n',
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "WordLevel", "vocab": vocab}}).encode(),
        "tokenizer_config.json": b'{"model_max_length": 2048}\n',
        "special_tokens_map.json": b'{"bos_token": "tok1", "eos_token": "tok2"}\n',
        "README.md": b"# a tiny generated model for gpuctl's tests\n",
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "original/consolidated.00.pth": rng.randbytes(4096),
    }


def tiny_model(repo: str, *, shards: int = 3, layers_per_shard: int = 2, seed: int = 0, gated: bool = False,
               tensor_bytes: int = 256 * 1024, commit: str = "") -> HubRepo:
    """A sharded safetensors model of a few MB, with its index, config and tokenizer (and files gpuctl skips:
    a ``consolidated.safetensors`` the index does not list, a README, a pickle under ``original/``)."""
    rng = random.Random(f"{repo}:{seed}")
    files = _common_files(rng)
    weight_map: dict[str, str] = {}
    total = 0
    for shard in range(shards):
        name = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {f"model.layers.{shard * layers_per_shard + i}.mlp.weight": ([tensor_bytes // 512, 256],
                                                                              rng.randbytes(tensor_bytes))
                   for i in range(layers_per_shard)}
        files[name] = safetensors_bytes(tensors)
        weight_map.update(dict.fromkeys(tensors, name))
        total += sum(len(data) for _, data in tensors.values())
    files["model.safetensors.index.json"] = json.dumps({"metadata": {"total_size": total},
                                                        "weight_map": weight_map}, indent=2).encode()
    files["consolidated.safetensors"] = safetensors_bytes({"all": ([64, 256], rng.randbytes(32 * 1024))})
    return HubRepo(repo=repo, files=files, gated=gated, commit=commit)


def pickle_only_model(repo: str) -> HubRepo:
    """A repo whose only weights are a pickled ``pytorch_model.bin`` (loading it could run code)."""
    rng = random.Random(repo)
    files = _common_files(rng)
    files["pytorch_model.bin"] = b"PK\x03\x04" + rng.randbytes(64 * 1024)
    return HubRepo(repo=repo, files=files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300)
    args = parser.parse_args()
    hub = HubServer(args.host, args.port)
    hub.add(tiny_model("test-org/tiny-llama"))
    hub.add(tiny_model("test-org/gated-llama", gated=True))
    hub.add(pickle_only_model("test-org/pickle-only"))
    hub.start()
    print(f"stand-in hub on {hub.url} (token for gated repos: {GOOD_TOKEN})", flush=True)
    try:
        hub.threads[0].join()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
