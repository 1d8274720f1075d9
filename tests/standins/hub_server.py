"""A stand-in for the Hugging Face hub: the parts gpuctl and huggingface_hub use to download a model.

* ``GET /api/models/ORG/NAME/revision/REV[?blobs=true]``: ``sha`` (the commit), ``gated``, and
  ``siblings`` with ``rfilename`` (plus ``size``, ``blobId`` and ``lfs {size, sha256, pointerSize}``
  with ``blobs=true``), as huggingface_hub's ``model_info(files_metadata=True)`` reads them;
* ``GET /api/models/ORG/NAME/tree/REV[?recursive=true]``: ``[{type, oid, size, path, lfs {oid, size,
  pointerSize}}]``, what huggingface_hub 1.x/2.x ``snapshot_download`` lists (``list_repo_tree``);
* ``GET|HEAD /ORG/NAME/resolve/REV/FILE``: small files answered directly (``ETag`` = git blob id),
  LFS files redirected (302, ``X-Linked-Etag`` = sha256, ``X-Linked-Size``) to ``CDN/cdn/SHA256``,
  always with ``X-Repo-Commit``; errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound,
  EntryNotFound, GatedRepo) and ``X-Error-Message`` like the hub's;
* ``GET CDN/cdn/SHA256``: the LFS storage, on a second port (another origin, as the hub's storage
  is); like a pre-signed URL it refuses a request carrying an ``Authorization`` header (a client
  must not forward the token there). ``Range`` works everywhere, keep-alive too.

The hub's answers gpuctl must read right, each as the real hub sends it:

* **a renamed repo** (:meth:`HubServer.rename`): every URL of the old name answers ``307 Temporary
  Redirect`` with a *relative* ``Location`` on the hub's own host and a ``text/plain`` body
  ``Temporary Redirect. Redirecting to /...`` (recorded from huggingface.co in huggingface_hub's
  ``tests/cassettes/InferenceApiTest.test_simple_inference.yaml``: ``/api/models/bert-base-uncased``
  -> ``/api/models/google-bert/bert-base-uncased``). huggingface_hub keeps the token on such a
  same-host redirect and drops it when the redirect leaves the host (``file_download.py``,
  ``_get_metadata_or_catch_error``; its PR #1999 fixed exactly the renamed private repo);
* **a rejected token** (:data:`EXPIRED_TOKEN`, expired or revoked): ``401`` with ``X-Error-Message:
  Invalid credentials in Authorization header`` and no ``X-Error-Code``, on any repo (huggingface_hub
  ``utils/_http.py`` ``hf_raise_for_status`` and ``tests/test_utils_errors.py::
  test_hf_raise_for_status_401_repo_url_invalid_token``), unlike a missing repo (``401
  RepoNotFound`` without a token, ``404 RepoNotFound`` with one);
* **rate limits and outages** (:meth:`HubServer.fail`): ``429`` with the IETF-draft headers
  ``RateLimit: "resolvers";r=0;t=SECONDS`` and ``RateLimit-Policy: "fixed window";"resolvers";q=N;w=300``
  and an HTML body (huggingface_hub ``utils/_http.py`` ``parse_ratelimit_headers``; the hub's
  rate-limit docs: 5-minute windows, separate ``api`` / ``resolvers`` / ``pages`` buckets), or
  ``503`` (optionally with ``Retry-After``). huggingface_hub retries 408, 429, 500, 502, 503 and 504
  (``_DEFAULT_RETRY_ON_STATUS_CODES``), waiting ``t`` of ``RateLimit`` or ``Retry-After`` seconds.

Every request is logged with the body bytes actually sent, so a test can assert "nothing was
downloaded". With ``auto=True`` any repo asked for exists: a tiny model is made for it on first
request, at the commit asked for when that is a full sha (so pinned recipes resolve).
``stall(sha256, after)`` makes the next download of a blob stop after ``after`` bytes and hold the
connection (to kill a client halfway). ``Shaping`` makes the hub a slow, far-away server (each
connection capped, the link shared, a round trip per request and per new connection) for the
weights benchmark, and :class:`SyntheticFile` serves GB-sized shards without holding them in memory.
Run standalone::

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
import time
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model")
GOOD_TOKEN = "hf_standinGOODtoken0000"
#: a token the hub no longer accepts (expired or revoked): every request carrying it is refused
EXPIRED_TOKEN = "hf_standinEXPIREDtoken00"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_API = re.compile(r"^/api/models/([^/]+/[^/]+)/(revision|tree)/([^/?]+)$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_CDN = re.compile(r"^/cdn/([0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_SEND = 256 * 1024  # bytes per write: small enough to pace a capped connection smoothly


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class SyntheticFile:
    """``size`` bytes of pseudo-random content made as it is read: a GB-sized shard without a GB of RAM.

    Each MiB block is one random MiB (from ``seed``) with the block's number in its first 16 bytes, so
    no two blocks (and no two files) are alike and a misplaced range fails the digest.
    """

    BLOCK = 1 << 20

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.base = random.Random(seed).randbytes(self.BLOCK)

    def __len__(self) -> int:
        return self.size

    def read(self, start: int, end: int) -> bytes | memoryview:
        """Bytes ``start`` to ``end`` (exclusive); within one block and past its number, without a copy."""
        block, at = divmod(start, self.BLOCK)
        if at >= 16 and end <= (block + 1) * self.BLOCK:
            return memoryview(self.base)[at:at + end - start]
        out = bytearray()
        while start < end:
            block, at = divmod(start, self.BLOCK)
            stop = min(end, (block + 1) * self.BLOCK) - block * self.BLOCK
            if at < 16:
                head = struct.pack("<QQ", self.seed, block)
                out += head[at:min(stop, 16)]
                at = 16
            if at < stop:
                out += memoryview(self.base)[at:stop]
            start = block * self.BLOCK + stop
        return bytes(out)

    @cached_property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for offset in range(0, self.size, self.BLOCK):
            digest.update(self.read(offset, min(self.size, offset + self.BLOCK)))
        return digest.hexdigest()


Content = bytes | SyntheticFile


def _slice(data: Content, start: int, end: int) -> bytes | memoryview:
    return data.read(start, end) if isinstance(data, SyntheticFile) else memoryview(data)[start:end]


@dataclass
class HubRepo:
    """One model repo at one commit (also reachable as its branch)."""

    repo: str
    files: dict[str, Content]
    gated: bool = False
    branch: str = "main"
    commit: str = ""
    _digests: dict[str, tuple[Content, str]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.commit:
            digest = hashlib.sha1(self.repo.encode())
            for name in sorted(self.files):
                digest.update(name.encode() + bytes.fromhex(self.sha256(name)))
            self.commit = digest.hexdigest()

    def sha256(self, name: str) -> str:
        """The sha256 of a file, computed once (the CDN looks blobs up by it on every request)."""
        data = self.files[name]
        cached = self._digests.get(name)
        if cached is None or cached[0] is not data:
            sha = data.sha256 if isinstance(data, SyntheticFile) else hashlib.sha256(data).hexdigest()
            cached = self._digests[name] = (data, sha)
        return cached[1]

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES) or len(self.files[name]) >= 1 << 20

    def pointer(self, name: str) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256(name)}\n"
                f"size {len(self.files[name])}\n").encode()

    def blob_id(self, name: str) -> str:
        data = self.files[name]
        return git_blob_id(self.pointer(name) if self.is_lfs(name) else data)  # type: ignore[arg-type]

    def sibling(self, name: str, blobs: bool) -> dict[str, object]:
        if not blobs:
            return {"rfilename": name}
        size = len(self.files[name])
        if not self.is_lfs(name):
            return {"rfilename": name, "size": size, "blobId": self.blob_id(name)}
        return {"rfilename": name, "size": size, "blobId": self.blob_id(name),
                "lfs": {"size": size, "sha256": self.sha256(name), "pointerSize": len(self.pointer(name))}}

    def info(self, blobs: bool) -> dict[str, object]:
        return {"_id": hashlib.md5(self.repo.encode()).hexdigest()[:24], "id": self.repo, "modelId": self.repo,
                "sha": self.commit, "private": False, "gated": "manual" if self.gated else False,
                "siblings": [self.sibling(n, blobs) for n in sorted(self.files)]}

    def tree(self, recursive: bool) -> list[dict[str, object]]:
        """The hub's tree listing (one page: the hub pages by 1000 entries with a ``Link`` header)."""
        entries: list[dict[str, object]] = []
        folders = sorted({n.rsplit("/", 1)[0] for n in self.files if "/" in n})
        for folder in folders if recursive else sorted({f.split("/", 1)[0] for f in folders}):
            entries.append({"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(), "size": 0,
                            "path": folder})
        for name in sorted(self.files):
            if "/" in name and not recursive:
                continue
            entry: dict[str, object] = {"type": "file", "oid": self.blob_id(name), "size": len(self.files[name]),
                                        "path": name}
            if self.is_lfs(name):
                entry["lfs"] = {"oid": self.sha256(name), "size": len(self.files[name]),
                                "pointerSize": len(self.pointer(name))}
            entries.append(entry)
        return entries


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


@dataclass
class _Failure:
    """The next ``times`` requests whose path contains ``on`` (past ``after`` of them) get this answer instead."""

    status: int
    times: int
    on: str
    after: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Shaping:
    """The network between the hub and a client: each connection capped, the link shared, latency added.

    Rates are bytes per second (0: no cap). Every answer's first byte comes one ``rtt`` after its
    request (the request's way there and the answer's way back), a new connection costs one more
    (its TCP handshake); the stand-in does not model TCP slow start or TLS.
    """

    per_connection: float = 0.0
    link: float = 0.0
    rtt: float = 0.0


class _Link:
    """The shared link's schedule: a chunk goes out once both its connection and the link are free."""

    def __init__(self, shaping: Shaping) -> None:
        self.shaping = shaping
        self.lock = threading.Lock()
        self.free_at = 0.0

    def pace(self, connection_free_at: float, size: int) -> float:
        """Sleep until ``size`` bytes may leave; the time the connection is free again."""
        start = max(time.monotonic(), connection_free_at)
        if self.shaping.link:
            with self.lock:
                start = max(start, self.free_at)
                self.free_at = start + size / self.shaping.link
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return start + (size / self.shaping.per_connection if self.shaping.per_connection else 0.0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many parallel connections at once must not wait for a SYN retransmit


class HubServer:
    """The stand-in hub on ``host`` (loopback, or the test's own veth address); ``tokens`` may read gated repos."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tokens: tuple[str, ...] = (GOOD_TOKEN,),
                 auto: bool = False, shaping: Shaping | None = None) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.renamed: dict[str, str] = {}
        self.auto = auto
        self.tokens = set(tokens)
        self.revoked = {EXPIRED_TOKEN}
        self.log: list[Hit] = []
        self.stalls: dict[str, _Stall] = {}
        self.failures: list[_Failure] = []
        self.sending = 0  # file bodies being sent right now, and the most at once
        self.most_at_once = 0
        self.connections = 0  # TCP connections accepted (keep-alive reuses them)
        self.last_sent_at = 0.0  # time.monotonic() of the last body bytes sent
        self.shaping = shaping or Shaping()
        self.link = _Link(self.shaping)
        self.lock = threading.Lock()
        self.server = _Server((host, port), _handler(self))
        self.cdn_server = _Server((host, 0), _handler(self))
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
    def rename(self, old: str, new: str) -> HubRepo:
        """Move the repo ``old`` to ``new`` as the hub's settings page does: the old name redirects (307)."""
        repo = self.repos.pop(old)
        moved = HubRepo(repo=new, files=repo.files, gated=repo.gated, branch=repo.branch, commit=repo.commit)
        self.renamed[old] = new
        return self.add(moved)

    def fail(self, status: int, *, times: int = 1, on: str = "/", after: int = 0, retry_after: int | None = None,
             reset: int | None = None, code: str | None = None, message: str | None = None) -> None:
        """The next ``times`` requests whose path contains ``on`` (past the first ``after`` of them) are
        answered ``status``, as the hub does.

        ``reset``: for a 429, the seconds the hub's ``RateLimit`` header says the window has left;
        ``code`` and ``message``: the ``X-Error-Code`` / ``X-Error-Message`` of any other refusal.
        """
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if status == 429:
            bucket = "api" if on.startswith("/api/") else "resolvers"
            headers.update({"RateLimit": f'"{bucket}";r=0;t={300 if reset is None else reset}',
                            "RateLimit-Policy": f'"fixed window";"{bucket}";q=3000;w=300',
                            "Content-Type": "text/html; charset=utf-8"})
            body = b"<!doctype html><html><body><h1>429</h1><p>We had to rate limit you.</p></body></html>"
        elif status >= 500:
            headers["Content-Type"] = "text/plain; charset=utf-8"
            body = b"Service Unavailable" if status == 503 else b"Internal Error"
        else:
            headers.update({"Content-Type": "application/json", **({"X-Error-Code": code} if code else {}),
                            **({"X-Error-Message": message} if message else {})})
            body = json.dumps({"error": message or "error"}).encode()
        with self.lock:
            self.failures.append(_Failure(status, times, on, after, headers, body))

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

    def failure_for(self, path: str) -> _Failure | None:
        with self.lock:
            for failure in self.failures:
                if failure.on in path and failure.after > 0:
                    failure.after -= 1
                elif failure.on in path:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                    return failure
        return None

    def blob(self, sha: str) -> Content | None:
        for repo in list(self.repos.values()):
            for name, data in repo.files.items():
                if repo.is_lfs(name) and repo.sha256(name) == sha:
                    return data
        return None


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.free_at = 0.0  # when this connection may send its next chunk
            with hub.lock:
                hub.connections += 1
            if hub.shaping.rtt:
                time.sleep(hub.shaping.rtt)  # the handshake of a new connection

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
            if hub.shaping.rtt:
                time.sleep(hub.shaping.rtt)
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
            failure = hub.failure_for(path)
            if failure is not None:
                self.send(failure.status, {**failure.headers, "Content-Length": str(len(failure.body))})
                if method != "HEAD":
                    self.wfile.write(failure.body)
                return
            if match := _CDN.match(path):
                self.cdn(method, match.group(1), bool(auth))
                return
            if token in hub.revoked:
                self.json(401, {"error": INVALID_CREDENTIALS}, {"X-Error-Message": INVALID_CREDENTIALS})
                return
            match = _API.match(path) or _RESOLVE.match(path)
            if match and match.group(1) in hub.renamed:
                old = match.group(1)
                target = path.replace(f"/{old}/", f"/{hub.renamed[old]}/", 1) + (f"?{url.query}" if url.query else "")
                body = f"Temporary Redirect. Redirecting to {target}".encode()
                self.send(307, {"Location": target, "Content-Type": "text/plain; charset=utf-8",
                                "Content-Length": str(len(body))})
                if method != "HEAD":
                    self.wfile.write(body)
            elif match := _API.match(path):
                repo = self.find(match.group(1), match.group(3), token)
                if repo is None:
                    return
                query = parse_qs(url.query)
                if match.group(2) == "tree":
                    self.json(200, repo.tree(query.get("recursive", [""])[0].lower() == "true"), {})
                else:
                    self.json(200, repo.info(query.get("blobs", [""])[0].lower() == "true"), {})
            elif match := _RESOLVE.match(path):
                self.resolve(method, match.group(1), match.group(2), match.group(3), token)
            else:
                self.error(404, "EntryNotFound", "no such route")

        def find(self, name: str, revision: str, token: str | None) -> HubRepo | None:
            if hub.auto and name not in hub.repos:
                commit = revision if re.fullmatch(r"[0-9a-f]{40}", revision) else ""
                hub.add(tiny_model(name, commit=commit))
            repo = hub.repos.get(name)
            if repo is None:  # the hub cannot tell a missing repo from a private one without a token
                self.error(404 if token else 401, "RepoNotFound", "Repository not found")
                return None
            if revision not in (repo.branch, repo.commit):
                self.error(404, "RevisionNotFound", "Invalid rev id: " + revision)
                return None
            return repo

        def resolve(self, method: str, name: str, revision: str, filename: str, token: str | None) -> None:
            repo = self.find(name, revision, token)
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
                sha = repo.sha256(filename)
                headers.update({"ETag": f'"{repo.blob_id(filename)}"', "X-Linked-Etag": f'"{sha}"',
                                "X-Linked-Size": str(len(data)), "Location": f"{hub.cdn_url}/cdn/{sha}",
                                "Content-Length": "0"})
                self.send(302, headers)
                return
            headers["ETag"] = f'"{repo.blob_id(filename)}"'
            self.body(method, data, headers)

        def cdn(self, method: str, sha: str, authorized: bool) -> None:
            if authorized:  # as S3 answers a pre-signed URL sent with a second credential
                self.error(400, "InvalidArgument", "Only one auth mechanism allowed")
                return
            data = hub.blob(sha)
            if data is None:
                self.error(404, "EntryNotFound", "no such object")
                return
            self.body(method, data, {"ETag": f'"{sha}"'}, stall=hub.stalls.pop(sha, None))

        def body(self, method: str, data: Content, headers: dict[str, str], stall: _Stall | None = None) -> None:
            start, end, status = 0, len(data), 200
            match = _RANGE.match(self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    self.send(416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"})
                    return
                end = min(int(match.group(2)) + 1, len(data)) if match.group(2) else len(data)
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
                status = 206
            headers.update({"Content-Length": str(end - start), "Accept-Ranges": "bytes",
                            "Content-Type": "application/octet-stream"})
            self.send(status, headers)
            if method == "HEAD":
                return
            with hub.lock:
                hub.sending += 1
                hub.most_at_once = max(hub.most_at_once, hub.sending)
            try:
                self.send_body(data, start, end, stall)
            finally:
                with hub.lock:
                    hub.sending -= 1

        def send_body(self, data: Content, start: int, end: int, stall: _Stall | None) -> None:
            step = 64 * 1024 if stall is not None else _SEND
            for offset in range(start, end, step):
                if stall is not None and self.hit.sent >= stall.after:
                    stall.reached.set()
                    stall.release.wait(30)
                    self.close_connection = True
                    return
                chunk = _slice(data, offset, min(end, offset + step))
                if hub.shaping.per_connection or hub.shaping.link:
                    self.free_at = hub.link.pace(self.free_at, len(chunk))
                try:
                    self.wfile.write(chunk)
                except OSError:
                    self.close_connection = True
                    return
                self.hit.sent += len(chunk)
                hub.last_sent_at = time.monotonic()

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


def _common_files(rng: random.Random) -> dict[str, Content]:
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
