"""gpuctl's weights fetcher: runs on the GPU host, inside a throwaway container of the engine image.

Self-contained (Python 3.8+ standard library only) so it can be shipped to any host; it imports
nothing from gpuctl, and gpuctl imports its layout helpers from here, so both sides agree on paths.

It fills a Hugging Face cache (``CACHE`` is what the engine sees as ``HF_HOME``) in huggingface_hub's
own layout, so an engine started with ``HF_HUB_OFFLINE=1`` loads the files without any download::

    CACHE/hub/models--ORG--NAME/blobs/DIGEST            file contents (sha256 or git blob id)
    CACHE/hub/models--ORG--NAME/snapshots/COMMIT/FILE   relative symlink to ../../blobs/DIGEST
    CACHE/hub/models--ORG--NAME/refs/BRANCH             the commit a branch name pointed at
    CACHE/gpuctl/manifests/models--ORG--NAME/COMMIT.json  the file list, sizes and digests (gpuctl's)
    CACHE/gpuctl/verified/models--ORG--NAME.json        size, mtime and inode of each verified blob
    CACHE/gpuctl/locks/models--ORG--NAME.lock           one fetch, verify or removal of a repo at a time

Commands::

    fetcher.py fetch  --cache DIR --job FILE     download what is missing, verify it, link the snapshot
    fetcher.py ls     --cache DIR                what the cache holds
    fetcher.py verify --cache DIR [--repo R]     re-hash every file; corrupted ones are removed
    fetcher.py rm     --cache DIR --repo R       delete a repo's files

A job is ``{"endpoint": URL, "manifest": {...}, "workers": N, "connections": C, "part_size": BYTES,
"mirror": {...}}``. ``connections`` (default 16) HTTP connections download at once, kept alive
from one request to the next; a file larger than ``part_size`` (default 64 MiB) comes in parts of
about that size over as many of them as are free, a smaller one in one request; ``workers``
(default 4) files share them at once, and are verified or uploaded at once. The token comes from
``HF_TOKEN`` in the environment and is sent
to the hub's own host only (a renamed repo redirects there): never to the storage a download is
redirected to. Answers 408, 429 and 5xx are retried after the wait the hub asks for (``RateLimit``,
``Retry-After``), a bounded number of times. The optional ``mirror`` (a provider's copy of the
cache, e.g. an S3 bucket; see gpuctl.weights.mirror) maps blob digests to pre-signed URLs:
``sources`` (GET; tried before the hub, with the same resume and verification, and abandoned for
the hub when the copy fails its digest) and ``uploads`` (``{"url"}`` for one PUT, or ``{"part_size",
"parts": [url, ...]}`` for a multipart upload), where each blob goes once verified. The URLs are
credentials: no event or message names them.

Output: one JSON event per line on stdout, each prefixed with ``@gpuctl-weights``. A blob whose size,
mtime and inode match its verified stamp is trusted without re-hashing; anything that changed it
(a partial overwrite, a truncation) makes it hash again, and a mismatch fetches it again. A download
stopped at any point (a kill, a lost connection) resumes where each of its parts stopped.
"""

from __future__ import annotations

import argparse
import base64
import errno
import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Protocol

EVENT_PREFIX = "@gpuctl-weights "
HUB_DIR = "hub"
META_DIR = "gpuctl"
EXIT_OK, EXIT_FAILED, EXIT_BUSY = 0, 1, 4
CHUNK = 1 << 20
PROGRESS_EVERY_S = 0.5
#: how often a download in parts records what has arrived (what a killed run resumes from)
RECORD_EVERY_S = 1.0
ATTEMPTS = 4
HTTP_TIMEOUT_S = 60.0
USER_AGENT = "gpuctl-weights/2"
SHA256, GIT_SHA1 = "sha256", "git-blob-sha1"
#: an interrupted download: its bytes, and (for one in parts) what has arrived of each part
PARTIAL_SUFFIXES = (".incomplete", ".incomplete.parts")
#: connections at once, and the size of one ranged request: a 64 MiB part takes 1.3 s at 50 MB/s, so
#: the round trip that starts each one costs ~2% of a connection (the other connections fill the link)
CONNECTIONS, PART_SIZE, WORKERS = 16, 64 << 20, 4
#: bytes hashed at once: one read back from the page cache and one update, not one per arriving block
HASH_STEP = 8 * CHUNK
#: answers worth asking again (as huggingface_hub retries them), how often, and the longest wait
#: honoured: the hub's rate-limit windows last 5 minutes; a server asking for more has given up on us
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
HTTP_RETRIES = 6
RETRY_WAIT_MAX_S = 300.0
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
#: the hub's X-Error-Message for an expired, revoked or mistyped token (it sends no X-Error-Code then)
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


# -- layout (shared with gpuctl.weights) -----------------------------------------------------------
def repo_folder(repo: str) -> str:
    """``models--ORG--NAME``, as huggingface_hub names a model's cache folder."""
    return "models--" + repo.replace("/", "--")


def repo_dir(cache: str, repo: str) -> str:
    return os.path.join(cache, HUB_DIR, repo_folder(repo))


def manifest_path(cache: str, repo: str, commit: str) -> str:
    return os.path.join(manifests_dir(cache, repo), commit + ".json")


def stamps_path(cache: str, repo: str) -> str:
    return os.path.join(cache, META_DIR, "verified", repo_folder(repo) + ".json")


def manifests_dir(cache: str, repo: str) -> str:
    return os.path.join(cache, META_DIR, "manifests", repo_folder(repo))


def lock_path(cache: str, repo: str) -> str:
    return os.path.join(cache, META_DIR, "locks", repo_folder(repo) + ".lock")


# -- output ------------------------------------------------------------------------------------------
_out_lock = threading.Lock()


def emit(event: str, **fields: object) -> None:
    line = EVENT_PREFIX + json.dumps(dict(e=event, **fields), sort_keys=True)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Failure(Exception):
    """A problem the user must hear about; ``kind`` lets gpuctl pick the exit code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# -- files -------------------------------------------------------------------------------------------
def new_hasher(algo: str, size: int) -> hashlib._Hash:
    if algo == SHA256:
        return hashlib.sha256()
    if algo == GIT_SHA1:  # the hub's blobId of a file stored in git: sha1 of a header plus the content
        hasher = hashlib.sha1()
        hasher.update(b"blob %d\0" % size)
        return hasher
    raise Failure("job", "unknown digest algorithm " + repr(algo))


def feed(hasher: hashlib._Hash, handle: IO[bytes], limit: int = -1) -> None:
    """Hash what ``handle`` reads (its next ``limit`` bytes when given), 8 MiB at a time."""
    left = limit
    while left != 0:
        block = handle.read(8 * CHUNK if left < 0 else min(8 * CHUNK, left))
        if not block:
            break
        hasher.update(block)
        left = left - len(block) if left > 0 else left


def hash_file(path: str, algo: str, size: int) -> str:
    hasher = new_hasher(algo, size)
    with open(path, "rb") as handle:
        feed(hasher, handle)
    return hasher.hexdigest()


def stat_key(path: str) -> list:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_json(path: str, default: object) -> object:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return default


class Stamps:
    """Which blobs were verified, and the (size, mtime, inode) they had then; thread-safe."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        data = read_json(path, {})
        self.data = data if isinstance(data, dict) else {}

    def trusted(self, digest: str, blob: str) -> bool:
        with self.lock:
            return os.path.isfile(blob) and self.data.get(digest) == stat_key(blob)

    def set(self, digest: str, blob: str | None) -> None:
        with self.lock:
            if blob is None:
                self.data.pop(digest, None)
            else:
                self.data[digest] = stat_key(blob)
            write_atomic(self.path, json.dumps(self.data, sort_keys=True).encode())


class RepoLock:
    """An exclusive flock per repo: a second fetch of the same model waits for the first."""

    def __init__(self, cache: str, repo: str, wait: bool = True) -> None:
        self.path = lock_path(cache, repo)
        self.wait = wait
        self.handle: IO[str] | None = None

    def __enter__(self) -> RepoLock:
        import fcntl

        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        handle = open(self.path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if not self.wait:
                handle.close()
                raise Failure("busy", "another gpuctl process is using this model's cache") from None
            emit("info", message="waiting for another download of the same model to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


def link_snapshot(root: str, commit: str, name: str, digest: str) -> None:
    """snapshots/COMMIT/NAME -> relative path of blobs/DIGEST, as huggingface_hub links them."""
    link = os.path.join(root, "snapshots", commit, name)
    os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
    target = os.path.relpath(os.path.join(root, "blobs", digest), os.path.dirname(link))
    if os.path.islink(link) and os.readlink(link) == target:
        return
    tmp = f"{link}.{os.getpid()}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


# -- HTTP --------------------------------------------------------------------------------------------
class Headers(Protocol):
    """An answer's headers as read here: http.client's and httpx's both fit (case-insensitive ``get``)."""

    def get(self, __name: str) -> Any: ...


def origin(url: str) -> tuple:
    """(scheme, host, port): a token sent to one origin is never sent to another."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def retry_wait(status: int, headers: Headers, attempt: int) -> float:
    """Seconds to wait before asking again after an answer in RETRY_STATUSES (gpuctl's hub client uses it too).

    A 429 whose ``RateLimit`` header says the window is used up (``"resolvers";r=0;t=55``) waits for
    the window to reset; otherwise ``Retry-After`` (seconds); otherwise 1, 2, 4, 8, 8... seconds.
    """
    limit = re.search(r"\br\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)", headers.get("RateLimit") or "")
    if status == 429 and limit and int(limit.group(1)) == 0:
        return float(limit.group(2))
    after = (headers.get("Retry-After") or "").strip()
    if after.isdigit():
        return float(after)
    return float(min(8, 2 ** attempt))


def pause(stop: threading.Event, seconds: float) -> None:
    """Wait ``seconds``, or less when the run is stopped meanwhile."""
    stop.wait(seconds)


class HttpError(Exception):
    """An answer >= 400 that retrying did not cure: its status, headers, the URL that sent it, and why it stopped."""

    def __init__(self, status: int, headers: Headers, url: str, note: str = "") -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.url = url
        self.note = note


class Answer:
    """A response being read; its connection is kept for the next request once the body is read to the end."""

    def __init__(self, response: http.client.HTTPResponse, url: str, pool: dict, key: tuple) -> None:
        self.response = response
        self.url = url
        self.pool = pool
        self.key = key

    @property
    def status(self) -> int:
        return self.response.status

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the connection back, or close it when the body was not read to the end (it cannot be reused)."""
        if self.response.isclosed():
            return
        length = self.response.length
        if length is not None and length <= 64 * 1024 and not self.response.will_close:
            try:
                self.response.read()  # a small error page: reading it keeps the connection
                return
            except (OSError, http.client.HTTPException):
                pass
        self.response.close()
        connection = self.pool.pop(self.key, None)
        if connection is not None:
            connection[0].close()


class Http:
    """HTTP/1.1 with keep-alive (one connection per thread and origin), redirects, the token, and retries.

    The token is sent to the hub's origin only, so it follows the hub's own redirect of a renamed
    repo (``307``, a relative ``Location``) but never the redirect to the storage that serves large
    files, as huggingface_hub does. Proxies come from the environment (``https_proxy``, ``no_proxy``).
    """

    def __init__(self, hub: str, token: str | None, stop: threading.Event) -> None:
        self.hub = origin(hub)
        self.token = token
        self.stop = stop
        self.local = threading.local()
        self.proxies = urllib.request.getproxies()
        self.tls: ssl.SSLContext | None = None

    def get(self, url: str, start: int = 0, end: int | None = None,
            on_wait: Callable[[HttpError, float], None] | None = None) -> Answer:
        """The answer for ``url`` from byte ``start`` (to ``end``, exclusive; None: to the end), redirects followed.

        Answers in RETRY_STATUSES are asked again after ``retry_wait`` (``on_wait`` hears of each wait);
        any other answer >= 400, and one still failing after HTTP_RETRIES, raises HttpError. A broken
        connection raises OSError or http.client.HTTPException.
        """
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        attempt = 0
        while True:
            answer = self.follow(url, headers)
            if answer.status < 400:
                return answer
            error = HttpError(answer.status, answer.response.headers, answer.url)
            answer.close()
            if error.status not in RETRY_STATUSES:
                raise error
            wait = retry_wait(error.status, error.headers, attempt)
            if wait > RETRY_WAIT_MAX_S:
                error.note = f"it asks to wait {wait:g} s"
                raise error
            if attempt == HTTP_RETRIES:
                error.note = f"after {HTTP_RETRIES} retries"
                raise error
            if on_wait is not None:
                on_wait(error, wait)
            pause(self.stop, wait)
            if self.stop.is_set():
                raise Failure("stopped", "stopped")
            attempt += 1

    def follow(self, url: str, headers: dict) -> Answer:
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if self.token and origin(url) == self.hub:
                sent["Authorization"] = "Bearer " + self.token
            answer = self.send(url, sent)
            location = answer.response.getheader("Location")
            if answer.status not in REDIRECTS or not location:
                return answer
            answer.close()
            url = urllib.parse.urljoin(url, location)
        raise Failure("http", f"more than {MAX_REDIRECTS} redirects, the last to {origin(url)[1]}")  # no signed URL

    def send(self, url: str, headers: dict) -> Answer:
        """One GET on this thread's connection to the URL's origin; a connection the server closed is reopened."""
        key = origin(url)
        parts = urllib.parse.urlsplit(url)
        pool = self.local.__dict__.setdefault("pool", {})
        for fresh in (False, True):
            reused = key in pool
            if not reused:
                pool[key] = self.connect(key)
            connection, absolute, extra = pool[key]
            target = url if absolute else (parts.path or "/") + ("?" + parts.query if parts.query else "")
            try:
                connection.request("GET", target, headers={**headers, **extra})
                return Answer(connection.getresponse(), url, pool, key)
            except (ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest):
                connection.close()  # a kept connection the server closed meanwhile: one more try on a new one
                pool.pop(key, None)
                if not reused or fresh:
                    raise
            except BaseException:
                connection.close()
                pool.pop(key, None)
                raise
        raise AssertionError("unreachable")

    def connect(self, key: tuple) -> tuple:
        """A new connection to ``key``'s origin: (connection, whether requests name the whole URL, extra headers)."""
        scheme, host, port = key
        proxy = self.proxies.get(scheme)
        extra = {}
        if proxy and not urllib.request.proxy_bypass(host):
            via = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
            if via.username:
                login = urllib.parse.unquote(via.username) + ":" + urllib.parse.unquote(via.password or "")
                extra["Proxy-Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
            if scheme == "https":  # a tunnel through the proxy, TLS to the server itself
                tunnel = http.client.HTTPSConnection(via.hostname or "", via.port or 80, timeout=HTTP_TIMEOUT_S,
                                                     context=self.context())
                tunnel.set_tunnel(host, port, headers=extra)
                return tunnel, False, {}
            return http.client.HTTPConnection(via.hostname or "", via.port or 80, timeout=HTTP_TIMEOUT_S), True, extra
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=HTTP_TIMEOUT_S, context=self.context()), False, extra
        return http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S), False, extra

    def close(self) -> None:
        """Close this thread's connections."""
        for connection in self.local.__dict__.pop("pool", {}).values():
            connection[0].close()

    def context(self) -> ssl.SSLContext:
        if self.tls is None:  # one verifying context: each new one reads the whole CA bundle
            self.tls = ssl.create_default_context()
        return self.tls


def hub_failure(error: HttpError, hub: tuple, name: str, repo: str, commit: str) -> Failure:
    """What the hub's refusal means, read as huggingface_hub reads it (X-Error-Code, X-Error-Message)."""
    status, code = error.status, error.headers.get("X-Error-Code") or ""
    message = error.headers.get("X-Error-Message") or ""
    if origin(error.url) != hub:  # the storage the hub redirected to (or the mirror): no hub semantics
        return Failure("http", f"downloading {name} failed: the storage answered HTTP {status}"
                       + (f", {error.note}" if error.note else ""))
    if status == 401 and message == INVALID_CREDENTIALS:
        return Failure("token", f"the hub rejected the token (HTTP 401: {message})")
    if code == "GatedRepo":
        return Failure("gated", f"the hub refused {name} of {repo} (HTTP {status}, GatedRepo)")
    if code in ("RepoNotFound", "RevisionNotFound", "EntryNotFound") or status in (401, 404):
        return Failure("not_found", f"the hub has no {name} in {repo} at {commit} (HTTP {status}"
                       + (f", {code})" if code else ")"))
    if status == 403:
        return Failure("auth", f"the hub refused {name} of {repo} (HTTP 403" + (f": {message})" if message else ")"))
    return Failure("http", f"the hub answered HTTP {status} for {name} of {repo}"
                   + (f" ({error.note})" if error.note else ""))


class MirrorUnusable(Exception):
    """The mirror could not serve a file (expired URL, object gone, unreachable): the hub serves it instead."""


def reason(exc: BaseException) -> str:
    """What went wrong, without the URL (urllib's errors name the host at most, never the signed query)."""
    return str(getattr(exc, "reason", None) or exc) or type(exc).__name__


class _Slice:
    """``length`` bytes of an open file from its current position, read as http.client sends a body."""

    def __init__(self, handle: IO[bytes], length: int) -> None:
        self.handle = handle
        self.left = length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        block = self.handle.read(size)
        self.left -= len(block)
        return block


def put_range(url: str, path: str, offset: int, length: int) -> str:
    """PUT bytes ``offset`` to ``offset + length`` of ``path`` to a pre-signed URL; the ETag the storage answers."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        # the type is set because urllib would send form-encoded, and a pre-signed URL signs only the host
        request = urllib.request.Request(url, data=_Slice(handle, length), method="PUT", headers={
            "Content-Length": str(length), "Content-Type": "application/octet-stream", "User-Agent": USER_AGENT})
        with urllib.request.build_opener().open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.headers.get("ETag", "")


# -- fetching ------------------------------------------------------------------------------------------
class Progress:
    """Bytes downloaded by all connections, reported at most every PROGRESS_EVERY_S."""

    def __init__(self, need: int) -> None:
        self.need = need
        self.done = 0
        self.from_mirror = 0
        self.lock = threading.Lock()
        self.last = 0.0

    def add(self, count: int, mirror: bool = False) -> None:
        with self.lock:
            self.done += count
            self.from_mirror += count if mirror else 0
            now = time.monotonic()
            if now - self.last < PROGRESS_EVERY_S:
                return
            self.last, done = now, self.done
        emit("progress", done=done, need=self.need)


def split(size: int, part_size: int) -> list:
    """[start, end, arrived] of each part: ranges of about ``part_size`` bytes (one part for a small file)."""
    count = max(1, -(-size // max(1, part_size)))
    step = max(1, -(-size // count))
    return [[start, min(size, start + step), 0] for start in range(0, size, step)] or [[0, 0, 0]]


def arrived_parts(partial: str, size: int, part_size: int) -> list:
    """The parts of a file and how much of each a previous run left in ``partial`` (all zero: nothing).

    A download in parts records them in ``partial + ".parts"``; without a record the partial file is
    a prefix, as a download in one request (or an older fetcher) leaves it.
    """
    try:
        have = os.path.getsize(partial)
    except OSError:
        return split(size, part_size)
    record = read_json(partial + ".parts", None) if os.path.exists(partial + ".parts") else False
    if isinstance(record, dict) and record.get("size") == size and have == size:
        parts = record.get("parts")
        if isinstance(parts, list) and parts and all(
                isinstance(p, list) and len(p) == 3 and all(isinstance(n, int) for n in p) for p in parts) and all(
                parts[i][0] == (parts[i - 1][1] if i else 0) and 0 <= parts[i][2] <= parts[i][1] - parts[i][0]
                for i in range(len(parts))) and parts[-1][1] == size:
            return [list(p) for p in parts]
    parts = split(size, part_size)
    if record is False and have <= size:  # an unusable record: the bytes may lie anywhere, start over
        for part in parts:
            part[2] = max(0, min(part[1], have) - part[0])
    return parts


def read_at(fd: int, buffer: memoryview, count: int, offset: int) -> int:
    """Read ``count`` bytes at ``offset`` into ``buffer`` (no new 8 MiB object, and its page faults, per read)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buffer[:count]], offset)
    block = os.pread(fd, count, offset)
    buffer[:len(block)] = block
    return len(block)


class Download:
    """One file arriving in ``blobs/DIGEST.incomplete``: in parts over several connections when it is large.

    What has arrived of each part is recorded (``.incomplete.parts``, rewritten at most every
    RECORD_EVERY_S and when a part completes), so a run killed at any point resumes every part where
    it stopped. The bytes are hashed in file order as soon as the bytes before them are there (read
    back from the page cache, by whichever connection extended that prefix), so the digest is known
    moments after the last byte arrives, with no second pass over the file.
    """

    def __init__(self, transfers: Transfers, entry: dict) -> None:
        owner = transfers.fetcher
        self.transfers = transfers
        self.entry = entry
        self.name, self.size, self.digest = entry["name"], entry["size"], entry["digest"]
        self.partial = owner.blob(entry) + ".incomplete"
        self.hub_url = (f"{owner.endpoint.rstrip('/')}/{owner.repo}/resolve/{owner.commit}/"
                        + urllib.parse.quote(self.name))
        self.mirror = owner.sources.get(self.digest)  # tried first; any failure of it hands the file to the hub
        self.location: str | None = None  # where the hub sent the first request (its storage): the next go there
        self.resolving = threading.Lock()
        self.lock = threading.Lock()
        self.parts: list = []
        self.fd = -1
        self.hasher: hashlib._Hash | None = None
        self.hashed = 0
        self.hashing = False
        self.buffer: memoryview | None = None
        self.recorded = 0.0
        self.attempts = 0
        self.resumed = False
        self.from_mirror = False

    # -- the partial file and its record ------------------------------------------------------------
    def begin(self) -> list:
        """Open the partial file, resuming what a previous run left; the parts that still lack bytes."""
        self.parts = arrived_parts(self.partial, self.size, self.transfers.fetcher.part_size)
        if self.attempts == 0:
            self.resumed = any(p[2] for p in self.parts)
        if len(self.parts) > 1:
            self.write_record()  # before any byte lands out of order: the partial file is no prefix from now on
        elif os.path.exists(self.partial + ".parts"):
            os.unlink(self.partial + ".parts")
        self.fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self.fd, self.size if len(self.parts) > 1 else self.parts[0][2])
        self.hasher, self.hashed, self.from_mirror = new_hasher(self.entry["algo"], self.size), 0, False
        return [i for i, p in enumerate(self.parts) if p[0] + p[2] < p[1]]

    def write_record(self) -> None:
        self.recorded = time.monotonic()
        write_atomic(self.partial + ".parts", json.dumps({"size": self.size, "parts": self.parts}).encode())

    def close(self) -> None:
        """Record what arrived (a stopped run resumes from it) and close the partial file."""
        with self.lock:
            if self.fd < 0:
                return
            if len(self.parts) > 1:
                self.write_record()
            os.close(self.fd)
            self.fd, self.buffer = -1, None

    # -- fetching a part ----------------------------------------------------------------------------
    def fetch(self, index: int) -> None:
        """Download what part ``index`` lacks; a broken connection resumes from the last byte written."""
        part, stop = self.parts[index], self.transfers.fetcher.stop
        failures = 0
        while part[0] + part[2] < part[1]:
            if stop.is_set():
                raise Failure("stopped", "stopped")
            before = part[2]
            try:
                self.transfer(index)
            except MirrorUnusable as exc:  # what arrived is kept: the hub goes on from there
                emit("retry", name=self.name, message=f"{exc}; downloading it from the hub")
                self.mirror = None
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise Failure("disk", f"the cache disk is full while writing {self.name}") from None
                failures = 1 if part[2] > before else failures + 1
                if failures == ATTEMPTS:
                    raise Failure("http", f"downloading {self.name} failed {ATTEMPTS} times: {reason(exc)}") from None
                emit("retry", name=self.name, message=f"{self.name}: {reason(exc)}")
                pause(stop, min(8.0, 0.5 * 2 ** (failures - 1)))

    def open(self, start: int, end: int | None) -> Answer:
        """The answer for bytes ``start`` to ``end`` from the mirror, the hub's storage, or the hub."""
        http_ = self.transfers.http
        if self.mirror is not None:
            try:
                return http_.get(self.mirror, start, end)
            except HttpError as exc:
                raise MirrorUnusable(f"the mirror could not serve {self.name} (HTTP {exc.status})") from None
            except (OSError, http.client.HTTPException) as exc:
                raise MirrorUnusable(f"the mirror could not serve {self.name} ({reason(exc)})") from None
        owner = self.transfers.fetcher

        def on_wait(error: HttpError, wait: float) -> None:
            where = "hub" if origin(error.url) == http_.hub else "hub's storage"
            emit("retry", name=self.name, message=f"the {where} answered HTTP {error.status} for {self.name}; "
                                                   f"asking again in {wait:g} s")

        location = self.location
        try:
            if location is None:
                with self.resolving:  # one trip through the hub per file: the other parts wait for where it leads
                    if self.location is None:
                        answer = http_.get(self.hub_url, start, end, on_wait)
                        self.location = answer.url
                        return answer
                    location = self.location
            try:
                return http_.get(location, start, end, on_wait)
            except HttpError as exc:
                if exc.status not in (401, 403, 404, 410) or origin(location) == http_.hub:
                    raise
                self.location = None  # the storage URL the hub signed has expired: ask the hub again
                return self.open(start, end)
        except HttpError as exc:
            raise hub_failure(exc, http_.hub, self.name, owner.repo, owner.commit) from None

    def transfer(self, index: int) -> None:
        """One request for what part ``index`` lacks, written where it belongs as it arrives."""
        part, stop = self.parts[index], self.transfers.fetcher.stop
        offset, single, mirror = part[0] + part[2], len(self.parts) == 1, self.mirror is not None
        # one part asks for the rest of the file (bytes=N-), a part of several for exactly its range
        with self.open(offset, None if single else part[1]) as answer:
            if answer.status == 206:
                given = re.match(r"bytes (\d+)-", answer.response.getheader("Content-Range") or "")
                if not given or int(given.group(1)) != offset:
                    raise http.client.HTTPException(f"the server sent another range of {self.name}")
            elif answer.status == 200 and offset and single:  # the server ignored Range: start over
                with self.lock:
                    part[2], offset = 0, 0
                    os.ftruncate(self.fd, 0)
                    self.hasher, self.hashed = new_hasher(self.entry["algo"], self.size), 0
            elif answer.status != 200 or offset or part[1] != self.size:
                raise http.client.HTTPException(f"HTTP {answer.status} for a range of {self.name}")
            while offset < part[1]:
                if stop.is_set():
                    raise Failure("stopped", "stopped")
                block = answer.response.read1(min(CHUNK, part[1] - offset))  # what has arrived, not a full CHUNK
                if not block:
                    raise http.client.IncompleteRead(b"", part[1] - offset)
                os.pwrite(self.fd, block, offset)  # in the page cache now: a run killed from here on keeps it
                offset += len(block)
                self.arrived(index, len(block), mirror)

    def arrived(self, index: int, count: int, mirror: bool) -> None:
        part = self.parts[index]
        with self.lock:
            part[2] += count
            self.from_mirror = self.from_mirror or mirror
            complete = part[0] + part[2] == part[1]
            if len(self.parts) > 1 and (complete or time.monotonic() - self.recorded >= RECORD_EVERY_S):
                self.write_record()
        self.transfers.progress.add(count, mirror=mirror)
        # the part that holds the hashed offset hashes what it brought every 8 MiB (one read, one update);
        # a completed part may close the gap before the parts after it
        if complete or part[0] <= self.hashed <= part[0] + part[2] - HASH_STEP:
            self.advance()

    # -- verifying ----------------------------------------------------------------------------------
    def advance(self) -> None:
        """Hash the bytes that now follow the hashed prefix without a gap; at the end of the file, finish it.

        One thread hashes at a time; a thread finding another at it leaves the new bytes to it (the
        holder looks again before it lets go, under the same lock that records arrivals).
        """
        with self.lock:
            if self.hashing or self.hasher is None:
                return
            self.hashing = True
        if self.buffer is None:  # one per file, used by the one thread hashing it
            self.buffer = memoryview(bytearray(max(1, min(HASH_STEP, self.size))))
        buffer = self.buffer
        try:
            while True:
                with self.lock:
                    start, end = self.hashed, self.contiguous()
                    if end <= start or self.fd < 0:
                        self.hashing = False
                        break
                while start < end:
                    count = read_at(self.fd, buffer, min(len(buffer), end - start), start)
                    if not count:
                        raise OSError(errno.EIO, f"{self.name} is shorter on disk than what arrived")
                    self.hasher.update(buffer[:count])
                    start += count
                with self.lock:
                    self.hashed = end
        except BaseException:
            with self.lock:
                self.hashing = False
            raise
        if self.hashed == self.size and all(p[0] + p[2] == p[1] for p in self.parts):
            with self.lock:
                if self.hasher is None:
                    return  # another thread finished it
                digest, self.hasher = self.hasher.hexdigest(), None
            self.finish(digest)

    def contiguous(self) -> int:
        """The end of the bytes that arrived without a gap from the hashed offset on."""
        end = self.hashed
        for start, stop, done in self.parts:
            if stop <= end:
                continue
            if start + done < stop:
                return max(end, start + done)
            end = stop
        return end

    def finish(self, digest: str) -> None:
        """The whole file has arrived and hashed: move it in place, or start over when it is wrong."""
        owner, blob = self.transfers.fetcher, self.transfers.fetcher.blob(self.entry)
        self.close()
        if os.path.exists(self.partial + ".parts"):
            os.unlink(self.partial + ".parts")
        if digest == self.digest:
            os.chmod(self.partial, 0o644)
            os.replace(self.partial, blob)
            owner.stamps.set(self.digest, blob)
            emit("file", name=self.name, size=self.size)
            result = "refetched" if self.name in owner.corrupt else "resumed" if self.resumed else "downloaded"
            self.transfers.finished(self, result)
            return
        os.unlink(self.partial)  # what arrived is wrong (a bad partial file, a broken mirror): start over
        self.attempts += 1
        if self.from_mirror:  # gpuctl deletes the mirror's copy; this run uploads a good one if it may
            emit("mirror-corrupt", name=self.name, digest=self.digest,
                 message=f"the mirror's copy of {self.name} does not match its digest; downloading it from the hub")
            self.mirror = None
        else:
            emit("retry", name=self.name, message=f"{self.name} arrived with the wrong sha256; downloading it again")
        if self.attempts >= ATTEMPTS:
            raise Failure("mismatch", f"{self.name} of {owner.repo} does not match the hub's digest after "
                                      f"{ATTEMPTS} attempts")
        self.transfers.restart(self)


class Transfers:
    """The files to download, as parts on one queue that ``connections`` threads serve.

    Parts are queued taking one from each of ``workers`` files in turn: their verification runs side
    by side, and what is left to hash once the last byte arrives is a few parts per file, not a wave
    of parts of one file. A file is opened only when it joins them: no partial file before its time.
    """

    def __init__(self, fetcher: Fetcher, entries: list, progress: Progress, on_file: Callable[[dict], None]) -> None:
        self.fetcher = fetcher
        self.progress = progress
        self.on_file = on_file
        self.http = Http(fetcher.endpoint, fetcher.token, fetcher.stop)
        self.waiting: list = [Download(self, entry) for entry in entries]
        self.downloads = list(self.waiting)
        self.active: list = []  # [download, indices of its parts not queued yet]
        self.tasks: queue.Queue = queue.Queue()
        self.depth = 2 * fetcher.connections
        self.changed = threading.Condition()
        self.left = len(entries)
        self.failure: BaseException | None = None
        self.results: dict = {}

    def run(self) -> dict:
        """Download every file; the result of each ("downloaded", "resumed", "refetched") by name."""
        threads = [threading.Thread(target=self.work, name=f"gpuctl-fetch-{n}", daemon=True)
                   for n in range(self.fetcher.connections)]
        for thread in threads:
            thread.start()
        try:
            with self.changed:
                while self.left and self.failure is None:
                    self.changed.release()
                    try:
                        self.feed()
                    finally:
                        self.changed.acquire()
                    self.changed.wait(0.2)
        except BaseException as exc:  # an interrupt: the connections stop at their next block
            self.fail(exc)
        finally:
            for _ in threads:
                self.tasks.put(None)
            for thread in threads:
                thread.join(HTTP_TIMEOUT_S if self.failure is None else 5.0)
            for download in self.downloads:
                download.close()
        if self.failure is not None:
            raise self.failure
        return self.results

    def feed(self) -> None:
        while self.tasks.qsize() < self.depth and self.failure is None:
            while len(self.active) < self.fetcher.workers and self.waiting:
                download = self.waiting.pop(0)
                todo = self.open(download)
                if todo:
                    self.active.append([download, todo])
            if not self.active:
                return
            download, todo = self.active.pop(0)
            self.tasks.put((download, todo.pop(0)))
            if todo:
                self.active.append([download, todo])

    def open(self, download: Download) -> list:
        """The parts of ``download`` still to fetch; none: everything arrived in an earlier run, verify it."""
        todo = download.begin()
        if not todo:
            download.advance()
        return todo

    def restart(self, download: Download) -> None:
        """Fetch a file again from its first byte (what arrived was wrong)."""
        for index in self.open(download):
            self.tasks.put((download, index))

    def work(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                self.http.close()
                return
            if self.tasks.qsize() < self.depth // 2:
                with self.changed:
                    self.changed.notify_all()  # the queue runs low: feed it now, not at the next tick
            if self.fetcher.stop.is_set():
                continue
            download, index = task
            try:
                download.fetch(index)
            except BaseException as exc:
                self.fail(exc)

    def finished(self, download: Download, result: str) -> None:
        self.on_file(download.entry)  # before the count: the last upload is queued before run() returns
        with self.changed:
            self.results[download.name] = result
            self.left -= 1
            self.changed.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.changed:
            if self.failure is None:
                self.failure = exc
            self.fetcher.stop.set()  # the other connections stop at their next block; what arrived is recorded
            self.changed.notify_all()


class Fetcher:
    def __init__(self, cache: str, job: dict, token: str | None) -> None:
        manifest = job["manifest"]
        self.cache = cache
        self.endpoint = job["endpoint"]
        self.repo = manifest["repo"]
        self.revision = manifest["revision"]
        self.commit = manifest["commit"]
        self.files = manifest["files"]
        self.manifest = manifest
        self.workers = max(1, int(job.get("workers") or WORKERS))
        self.connections = max(1, int(job.get("connections") or CONNECTIONS))
        self.part_size = max(CHUNK, int(job.get("part_size") or PART_SIZE))
        self.token = token
        self.root = repo_dir(cache, self.repo)
        self.stamps = Stamps(stamps_path(cache, self.repo))
        self.stop = threading.Event()
        self.corrupt: set = set()
        mirror = job.get("mirror") or {}
        self.sources: dict = mirror.get("sources") or {}
        self.uploads: dict = mirror.get("uploads") or {}
        self.claimed: set = set()  # digests an upload was started for (two names may share a blob)
        self.mirror_lock = threading.Lock()
        self.mirrored: list = []

    def blob(self, entry: dict) -> str:
        return os.path.join(self.root, "blobs", entry["digest"])

    def run(self) -> None:
        os.makedirs(os.path.join(self.root, "blobs"), mode=0o755, exist_ok=True)
        with RepoLock(self.cache, self.repo):
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                verified = list(pool.map(self.present, self.files))
            missing = [f for i, f in enumerate(self.files) if not verified[i]]
            total = sum(f["size"] for f in self.files)
            need = sum(f["size"] - self.partial_size(f) for f in missing)
            emit("plan", files=len(self.files), total=total, need=need, missing=len(missing))
            self.check_space(need)
            progress = Progress(need)
            absent = {f["name"] for f in missing}
            with ThreadPoolExecutor(max_workers=self.workers) as uploads:
                sent: list = [uploads.submit(self.upload, f) for f in self.files if f["name"] not in absent]
                try:
                    results = Transfers(self, missing, progress,
                                        lambda entry: sent.append(uploads.submit(self.upload, entry))).run()
                except BaseException:
                    self.stop.set()  # uploads stop between their parts
                    raise
                for future in list(sent):
                    future.result()
            emit("progress", done=progress.done, need=need)
            for entry in self.files:
                link_snapshot(self.root, self.commit, entry["name"], entry["digest"])
            if self.revision != self.commit:
                write_atomic(os.path.join(self.root, "refs", self.revision), self.commit.encode())
            write_atomic(manifest_path(self.cache, self.repo, self.commit),
                         json.dumps(self.manifest, sort_keys=True, indent=1).encode())
            emit("done", total=total, downloaded=progress.done, reused=total - sum(
                f["size"] for f in missing), files=len(self.files),
                refetched=sorted(n for n, r in results.items() if r == "refetched"),
                resumed=sorted(n for n, r in results.items() if r == "resumed"),
                from_mirror=progress.from_mirror, mirrored=sorted(self.mirrored))

    def present(self, entry: dict) -> bool:
        """Whether the blob is in place and verified; a blob that fails its check is removed (and refetched)."""
        blob = self.blob(entry)
        if not os.path.isfile(blob):
            return False
        if self.stamps.trusted(entry["digest"], blob):
            return True
        if os.path.getsize(blob) == entry["size"] and hash_file(blob, entry["algo"], entry["size"]) == entry["digest"]:
            self.stamps.set(entry["digest"], blob)
            return True
        emit("corrupt", name=entry["name"], message=f"{entry['name']} does not match its digest; fetching it again")
        os.unlink(blob)
        self.stamps.set(entry["digest"], None)
        self.corrupt.add(entry["name"])
        return False

    def partial_size(self, entry: dict) -> int:
        """Bytes of the file an earlier run left to resume from."""
        return sum(p[2] for p in arrived_parts(self.blob(entry) + ".incomplete", entry["size"], self.part_size))

    def check_space(self, need: int) -> None:
        free = shutil.disk_usage(self.root).free
        if need > free:
            raise Failure("disk", f"the cache needs {need} more bytes but its disk has {free} free")

    def upload(self, entry: dict) -> None:
        """Copy a verified blob to the mirror when the job asks for it; a failure is reported, never fatal.

        The engine needs only the local copy; a blob missing from the mirror is uploaded by a later run.
        """
        digest, name = entry["digest"], entry["name"]
        target = self.uploads.get(digest)
        with self.mirror_lock:
            if target is None or digest in self.claimed:
                return
            self.claimed.add(digest)
        blob, size = self.blob(entry), entry["size"]
        step = target.get("part_size") or size
        ranges = [(url, n * step, min(step, size - n * step)) for n, url in enumerate(target.get("parts") or [])]
        try:
            etags = [self.put(url, blob, offset, length, name)
                     for url, offset, length in ranges or [(target["url"], 0, size)]]
        except Failure as exc:
            if exc.kind == "stopped":
                raise
            emit("mirror-failed", name=name, digest=digest, message=exc.message)
            return
        with self.mirror_lock:
            self.mirrored.append(name)
        emit("uploaded", name=name, digest=digest, size=size, parts=etags if ranges else None)

    def put(self, url: str, blob: str, offset: int, length: int, name: str) -> str:
        for attempt in range(ATTEMPTS):
            if self.stop.is_set():
                raise Failure("stopped", "stopped")
            try:
                return put_range(url, blob, offset, length)
            except urllib.error.HTTPError as exc:
                exc.close()
                problem = f"HTTP {exc.code}"
                if exc.code not in RETRY_STATUSES:  # refused (expired, denied): retrying cannot help
                    raise Failure("mirror", f"uploading {name} to the mirror failed ({problem})") from None
            except (OSError, http.client.HTTPException) as exc:
                problem = reason(exc)
            if attempt + 1 < ATTEMPTS:
                pause(self.stop, min(8.0, 0.5 * 2 ** attempt))
        raise Failure("mirror", f"uploading {name} to the mirror failed {ATTEMPTS} times ({problem})")


# -- listing, verifying, removing ------------------------------------------------------------------------
def manifests(cache: str, repo: str | None = None) -> list:
    root = os.path.join(cache, META_DIR, "manifests")
    found = []
    folders = [repo_folder(repo)] if repo else sorted(os.listdir(root)) if os.path.isdir(root) else []
    for folder in folders:
        directory = os.path.join(root, folder)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            data = read_json(os.path.join(directory, name), None) if name.endswith(".json") else None
            if isinstance(data, dict) and "files" in data:
                found.append(data)
    return found


def list_cache(cache: str) -> None:
    hub = os.path.join(cache, HUB_DIR)
    managed: dict[str, list] = {}
    for manifest in manifests(cache):
        managed.setdefault(manifest["repo"], []).append(manifest)
    folders = sorted(f for f in os.listdir(hub) if f.startswith("models--")) if os.path.isdir(hub) else []
    for folder in folders:
        root = os.path.join(hub, folder)
        repo = folder[len("models--"):].replace("--", "/")
        blobs = os.path.join(root, "blobs")
        sizes = {n: os.path.getsize(os.path.join(blobs, n)) for n in os.listdir(blobs)} if os.path.isdir(blobs) else {}
        refs_dir = os.path.join(root, "refs")
        refs = {}
        for dirpath, _, names in os.walk(refs_dir):
            for name in names:
                with open(os.path.join(dirpath, name)) as handle:
                    refs[os.path.relpath(os.path.join(dirpath, name), refs_dir)] = handle.read().strip()
        snapshots = os.path.join(root, "snapshots")
        commits = sorted(os.listdir(snapshots)) if os.path.isdir(snapshots) else []
        mine = managed.get(repo, [])
        complete = bool(mine) and all(sizes.get(f["digest"]) == f["size"] for m in mine for f in m["files"])
        emit("repo", repo=repo, commits=commits, refs=refs, size=sum(sizes.values()),
             files=sum(len(m["files"]) for m in mine) or sum(1 for n in sizes if not n.endswith(PARTIAL_SUFFIXES)),
             complete=complete, managed=bool(mine), partial=sum(1 for n in sizes if n.endswith(".incomplete")))


def verify_cache(cache: str, repo: str | None) -> bool:
    """Re-hash every file the manifests list; remove corrupted blobs. True when everything is intact."""
    intact = True
    for manifest in manifests(cache, repo):
        root = repo_dir(cache, manifest["repo"])
        missing, corrupt = [], []
        with RepoLock(cache, manifest["repo"], wait=False):
            stamps = Stamps(stamps_path(cache, manifest["repo"]))
            for entry in manifest["files"]:
                blob = os.path.join(root, "blobs", entry["digest"])
                if not os.path.isfile(blob):
                    missing.append(entry["name"])
                elif (os.path.getsize(blob) != entry["size"]
                      or hash_file(blob, entry["algo"], entry["size"]) != entry["digest"]):
                    corrupt.append(entry["name"])
                    os.unlink(blob)
                    stamps.set(entry["digest"], None)
                else:
                    stamps.set(entry["digest"], blob)
        intact = intact and not missing and not corrupt
        emit("verified", repo=manifest["repo"], commit=manifest["commit"], files=len(manifest["files"]),
             missing=missing, corrupt=corrupt)
    return intact


def remove_repo(cache: str, repo: str) -> None:
    with RepoLock(cache, repo, wait=False):
        freed = 0
        root = repo_dir(cache, repo)
        for dirpath, _, names in os.walk(root):
            freed += sum(os.lstat(os.path.join(dirpath, n)).st_size for n in names
                         if not os.path.islink(os.path.join(dirpath, n)))
        existed = os.path.isdir(root) or os.path.isdir(manifests_dir(cache, repo))
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(manifests_dir(cache, repo), ignore_errors=True)
        if os.path.exists(stamps_path(cache, repo)):
            os.unlink(stamps_path(cache, repo))
    emit("removed", repo=repo, existed=existed, freed=freed)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpuctl-weights")
    parser.add_argument("command", choices=("fetch", "ls", "verify", "rm"))
    parser.add_argument("--cache", required=True)
    parser.add_argument("--job")
    parser.add_argument("--repo")
    args = parser.parse_args(argv)
    os.umask(0o022)  # the engine, and the login user listing the cache, must be able to read every file
    try:
        if args.command == "fetch":
            job = read_json(args.job, None)
            if not isinstance(job, dict):
                raise Failure("job", "cannot read the job file " + str(args.job))
            Fetcher(args.cache, job, os.environ.get("HF_TOKEN") or None).run()
        elif args.command == "ls":
            list_cache(args.cache)
        elif args.command == "verify":
            return EXIT_OK if verify_cache(args.cache, args.repo) else EXIT_FAILED
        else:
            remove_repo(args.cache, args.repo)
    except Failure as exc:
        emit("error", kind=exc.kind, message=exc.message)
        return EXIT_BUSY if exc.kind == "busy" else EXIT_FAILED
    except KeyboardInterrupt:
        emit("error", kind="stopped", message="interrupted")
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
