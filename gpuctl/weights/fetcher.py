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

A job is ``{"endpoint": URL, "manifest": {...}, "workers": N, "mirror": {...}}``. The token comes from
``HF_TOKEN`` in the environment and is sent to the hub only: never to the storage a download is
redirected to. The optional ``mirror`` (a provider's copy of the cache, e.g. an S3 bucket; see
gpuctl.weights.mirror) maps blob digests to pre-signed URLs: ``sources`` (GET; tried before the hub,
with the same resume and verification, and abandoned for the hub when the copy fails its digest)
and ``uploads`` (``{"url"}`` for one PUT, or ``{"part_size", "parts": [url, ...]}`` for a multipart
upload), where each blob goes once verified. The URLs are credentials: no event or message names them.
Output: one JSON event per line on stdout, each prefixed with ``@gpuctl-weights``. A blob whose size,
mtime and inode match its verified stamp is trusted without re-hashing; anything that changed it
(a partial overwrite, a truncation) makes it hash again, and a mismatch fetches it again.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import IO

EVENT_PREFIX = "@gpuctl-weights "
HUB_DIR = "hub"
META_DIR = "gpuctl"
EXIT_OK, EXIT_FAILED, EXIT_BUSY = 0, 1, 4
CHUNK = 1 << 20
PROGRESS_EVERY_S = 0.5
ATTEMPTS = 4
HTTP_TIMEOUT_S = 60.0
USER_AGENT = "gpuctl-weights/1"
SHA256, GIT_SHA1 = "sha256", "git-blob-sha1"


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
class _NoAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects (the hub sends large files to its storage) keeping Range but never Authorization."""


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoAuthRedirect())


def open_url(url: str, offset: int, token: str | None = None):
    """The response for ``url`` from byte ``offset`` on; HTTPError as urllib raises it."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    if token:
        # unredirected: urllib copies only ordinary headers onto the redirected request
        request.add_unredirected_header("Authorization", "Bearer " + token)
    return _opener().open(request, timeout=HTTP_TIMEOUT_S)


def open_file(endpoint: str, repo: str, commit: str, name: str, token: str | None, offset: int):
    """The hub's response for ``name`` from byte ``offset`` on, or None when nothing lies past it (HTTP 416)."""
    url = f"{endpoint.rstrip('/')}/{repo}/resolve/{commit}/{urllib.parse.quote(name)}"
    try:
        return open_url(url, offset, token)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            exc.close()
            return None
        code = exc.headers.get("X-Error-Code", "") if exc.headers else ""
        exc.close()
        if code == "GatedRepo" or (exc.code in (401, 403) and code != "RepoNotFound"):
            kind = "gated" if code == "GatedRepo" else "auth"
            raise Failure(kind, f"the hub refused {name} of {repo} (HTTP {exc.code}, {code or 'no access'})") from None
        if exc.code in (401, 404):
            raise Failure("not_found", f"the hub has no {name} in {repo} at {commit} (HTTP {exc.code})") from None
        raise Failure("http", f"HTTP {exc.code} for {name} of {repo}") from None


class MirrorUnusable(Exception):
    """The mirror could not serve a file (expired URL, object gone, unreachable): the hub serves it instead."""


def open_mirror(url: str, name: str, offset: int):
    """The mirror's response for ``name`` from ``offset`` on, None past its end; the message never holds the URL."""
    try:
        return open_url(url, offset)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416:
            return None
        raise MirrorUnusable(f"the mirror could not serve {name} (HTTP {exc.code})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise MirrorUnusable(f"the mirror could not serve {name} ({reason(exc)})") from None


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
        with _opener().open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.headers.get("ETag", "")


# -- fetching ------------------------------------------------------------------------------------------
class Progress:
    """Bytes downloaded by all workers, reported at most every PROGRESS_EVERY_S."""

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
        self.workers = max(1, int(job.get("workers", 4)))
        self.token = token
        self.root = repo_dir(cache, self.repo)
        self.stamps = Stamps(stamps_path(cache, self.repo))
        self.stop = threading.Event()
        self.corrupt: set[str] = set()
        mirror = job.get("mirror") or {}
        self.sources: dict = mirror.get("sources") or {}
        self.uploads: dict = mirror.get("uploads") or {}
        self.claimed: set[str] = set()  # digests an upload was started for (two names may share a blob)
        self.mirror_lock = threading.Lock()
        self.mirrored: list[str] = []

    def blob(self, entry: dict) -> str:
        return os.path.join(self.root, "blobs", entry["digest"])

    def run(self) -> None:
        os.makedirs(os.path.join(self.root, "blobs"), mode=0o755, exist_ok=True)
        with RepoLock(self.cache, self.repo), ThreadPoolExecutor(max_workers=self.workers) as pool:
            verified = list(pool.map(self.present, self.files))
            missing = [f for i, f in enumerate(self.files) if not verified[i]]
            total = sum(f["size"] for f in self.files)
            need = sum(f["size"] - self.partial_size(f) for f in missing)
            emit("plan", files=len(self.files), total=total, need=need, missing=len(missing))
            self.check_space(need)
            progress = Progress(need)
            absent = {f["name"] for f in missing}
            futures = {f["name"]: pool.submit(self.fill, f, progress, f["name"] in absent) for f in self.files}
            try:
                results = {name: future.result() for name, future in futures.items()}
            except BaseException:
                self.stop.set()  # the other workers stop at their next block; their partial files stay
                raise
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

    def fill(self, entry: dict, progress: Progress, missing: bool) -> str:
        """Download the file when it is missing, then upload it to the mirror when the mirror lacks it."""
        result = self.download(entry, progress) if missing else "present"
        self.upload(entry)
        return result

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
        try:
            return min(os.path.getsize(self.blob(entry) + ".incomplete"), entry["size"])
        except OSError:
            return 0

    def check_space(self, need: int) -> None:
        free = shutil.disk_usage(self.root).free
        if need > free:
            raise Failure("disk", f"the cache needs {need} more bytes but its disk has {free} free")

    def download(self, entry: dict, progress: Progress) -> str:
        """Fetch one file into blobs/DIGEST.incomplete (resuming what is there), verify it, move it in place."""
        name, size, digest = entry["name"], entry["size"], entry["digest"]
        partial = self.blob(entry) + ".incomplete"
        resumed = self.partial_size(entry) > 0
        mirror = self.sources.get(digest)  # tried first; any failure of it hands the file to the hub
        for attempt in range(ATTEMPTS):
            if self.stop.is_set():
                raise Failure("stopped", "stopped")
            try:
                arrived = self.transfer(entry, partial, progress, mirror)
            except MirrorUnusable as exc:  # what arrived is kept: the hub goes on from there
                emit("retry", name=name, message=f"{exc}; downloading it from the hub")
                mirror = None
                continue
            except (OSError, http.client.HTTPException) as exc:  # a dropped connection: resume from what arrived
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise Failure("disk", f"the cache disk is full while writing {name}") from None
                if attempt + 1 == ATTEMPTS:
                    raise Failure("http", f"downloading {name} failed {ATTEMPTS} times: {exc}") from None
                emit("retry", name=name, message=str(exc))
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
                continue
            if arrived is None:
                emit("retry", name=name, message=f"the connection closed before the end of {name}")
                continue
            if arrived == digest:
                os.chmod(partial, 0o644)
                os.replace(partial, self.blob(entry))
                self.stamps.set(digest, self.blob(entry))
                emit("file", name=name, size=size)
                if name in self.corrupt:
                    return "refetched"
                return "resumed" if resumed else "downloaded"
            os.unlink(partial)  # what arrived is wrong (a bad partial file, a broken mirror): start over
            if mirror is not None:  # gpuctl deletes the mirror's copy; this run uploads a good one if it may
                emit("mirror-corrupt", name=name, digest=digest,
                     message=f"the mirror's copy of {name} does not match its digest; downloading it from the hub")
                mirror = None
                continue
            emit("retry", name=name, message=f"{name} arrived with the wrong sha256; downloading it again")
        raise Failure("mismatch", f"{name} of {self.repo} does not match the hub's digest after {ATTEMPTS} attempts")

    def transfer(self, entry: dict, partial: str, progress: Progress, mirror: str | None = None) -> str | None:
        """Append what ``partial`` lacks of the file (from the ``mirror`` URL when given, else the hub).

        Returns the digest of the whole when it is complete, else None. The bytes are hashed as they
        arrive (after those already there), so verifying costs no second read.
        """
        size = entry["size"]
        offset = self.partial_size(entry)
        response = None
        if offset < size and mirror is not None:
            response = open_mirror(mirror, entry["name"], offset)
        elif offset < size:
            response = open_file(self.endpoint, self.repo, self.commit, entry["name"], self.token, offset)
        if response is None:  # nothing past the offset (HTTP 416): the partial file is complete, or wrong
            return hash_file(partial, entry["algo"], size) if os.path.getsize(partial) == size else None
        hasher = new_hasher(entry["algo"], size)
        with response:
            if offset and response.status != 206:  # the server ignored Range: start over
                offset = 0
            with open(partial, "r+b" if offset else "wb") as handle:
                feed(hasher, handle, offset)
                handle.seek(offset)
                handle.truncate()
                while True:
                    if self.stop.is_set():
                        raise Failure("stopped", "stopped")
                    block = response.read1(CHUNK)  # whatever has arrived, not a full CHUNK
                    if not block:
                        break
                    handle.write(block)
                    handle.flush()  # on disk as it arrives: a run killed now resumes from here
                    hasher.update(block)
                    progress.add(len(block), mirror=mirror is not None)
                complete = handle.tell() >= size  # more than expected: the digest says it is wrong
        return hasher.hexdigest() if complete else None

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
                if exc.code < 500 and exc.code not in (408, 429):  # refused (expired, denied): retrying cannot help
                    raise Failure("mirror", f"uploading {name} to the mirror failed ({problem})") from None
            except (OSError, http.client.HTTPException) as exc:
                problem = reason(exc)
            if attempt + 1 < ATTEMPTS:
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
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
             files=sum(len(m["files"]) for m in mine) or sum(1 for n in sizes if not n.endswith(".incomplete")),
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
