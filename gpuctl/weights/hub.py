"""The Hugging Face hub as gpuctl reads it from the user's machine: a repo's file list and small files.

The file list comes from ``GET {HF_ENDPOINT}/api/models/{repo}/revision/{rev}?blobs=true``, the
call behind huggingface_hub's ``model_info(files_metadata=True)``: the commit (``sha``), whether the
repo is gated, and per file ``rfilename``, ``size``, ``blobId`` and, for LFS files, ``lfs.sha256``.
Errors are read the way huggingface_hub reads them, from the ``X-Error-Code`` and ``X-Error-Message``
headers; rate limits and outages are waited out within bounds (:func:`hub_get`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from gpuctl.envvars import Env
from gpuctl.errors import CredentialsError, GpuctlError, NotFoundError, ProviderError
from gpuctl.weights.fetcher import INVALID_CREDENTIALS, RETRY_STATUSES, retry_wait
from gpuctl.weights.models import HubFile, RepoInfo

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
HTTP_TIMEOUT_S = 30.0
TOKEN_HINT = "export HF_TOKEN=... or 'gpuctl config set hf.token VALUE'"
#: retries of a 408/429/5xx answer (as huggingface_hub's), and the longest wait honoured here, where
#: nothing is rented yet: a longer one fails at once, saying so (the fetcher on the host waits longer)
RETRIES = 5
WAIT_MAX_S = 60.0


class HubUnreachable(ProviderError):
    """No answer from the hub at all (as opposed to an answer that refuses)."""


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` (a mirror, or the tests' stand-in) or the public hub."""
    return (os.environ.get(Env.HF_ENDPOINT) or DEFAULT_ENDPOINT).rstrip("/")


def pause(seconds: float) -> None:
    time.sleep(seconds)


def repo_info(repo: str, revision: str, *, token: str | None, endpoint: str) -> RepoInfo:
    """The commit ``revision`` points at, whether ``repo`` is gated, and its files with sizes and digests."""
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}"
    data = hub_get(url, repo=repo, revision=revision, token=token, params={"blobs": "true"}).json()
    try:
        files = [HubFile(name=s["rfilename"], size=(s.get("lfs") or {}).get("size", s.get("size")),
                         blob_id=s["blobId"], lfs_sha256=(s.get("lfs") or {}).get("sha256"))
                 for s in data["siblings"]]
        return RepoInfo(repo=repo, commit=data["sha"], gated=bool(data.get("gated")), files=files)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderError(f"the hub's file list for {repo} is malformed ({type(exc).__name__}: {exc})",
                            f"check that HF_ENDPOINT ({endpoint}) is a Hugging Face hub") from exc


def read_file(repo: str, commit: str, name: str, *, token: str | None, endpoint: str) -> bytes:
    """A small file of ``repo`` at ``commit`` (an index, a config), read into memory."""
    url = f"{endpoint}/{repo}/resolve/{commit}/{quote(name)}"
    return hub_get(url, repo=repo, revision=commit, token=token, entry=name).content


def hub_get(url: str, *, repo: str, revision: str, token: str | None, params: dict[str, str] | None = None,
            entry: str | None = None) -> Any:
    """The hub's answer to a GET of ``url`` (about ``entry`` of ``repo``), or the gpuctl error for its refusal.

    Redirects are followed: httpx keeps the token on the hub's own host (a renamed repo answers 307
    with a relative Location) and drops it when a redirect leaves it (the storage of large files).
    408, 429 and 5xx are asked again after the wait the hub asks for (``RateLimit``, ``Retry-After``),
    up to RETRIES times and WAIT_MAX_S per wait.
    """
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    attempt = 0
    while True:
        try:
            response = httpx.get(url, params=params, headers=headers, timeout=HTTP_TIMEOUT_S, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise HubUnreachable(f"cannot reach the Hugging Face hub at {url.split('/', 3)[2]} "
                                 f"({type(exc).__name__})", "check the network, or HF_ENDPOINT") from exc
        status = response.status_code
        if status not in RETRY_STATUSES or attempt == RETRIES:
            break
        wait = retry_wait(status, response.headers, attempt)
        if wait > WAIT_MAX_S:
            break
        log.warning("the Hugging Face hub answered HTTP %d for %s; asking again in %g s", status, repo, wait)
        pause(wait)
        attempt += 1
    if status >= 400:
        raise hub_error(status, response.headers, repo, revision, token_given=bool(token), entry=entry)
    return response


def hub_error(status: int, headers: Mapping[str, str], repo: str, revision: str, *, token_given: bool,
              entry: str | None = None) -> GpuctlError:
    """The gpuctl error for a hub answer, read from ``X-Error-Code`` and ``X-Error-Message`` as
    huggingface_hub reads them: a rejected token 6, gated or refused 6, missing repo, revision or
    file 3, anything else (rate limits and outages that outlasted the retries) 4."""
    code, message = headers.get("X-Error-Code") or "", headers.get("X-Error-Message") or ""
    if status == 401 and message == INVALID_CREDENTIALS:
        return token_error()
    if code == "GatedRepo":
        return gated_error(repo, token_given=token_given)
    if code == "RepoNotFound" or (status == 401 and not code):
        hint = "check the repo id; if it is private, " + (
            "the token's account needs access to it" if token_given else TOKEN_HINT)
        return NotFoundError(f"{repo} does not exist on the hub, or is private", hint)
    if code == "RevisionNotFound":
        return NotFoundError(f"{repo} has no revision '{revision}'", "check the revision in the recipe or hf:REF@REV")
    if code == "EntryNotFound" or status == 404:
        return NotFoundError(f"{repo} has no {entry or 'such file'} at revision {revision}")
    if status in (401, 403):
        return CredentialsError(f"the hub refused {repo}: {message}" if message else
                                f"the hub refused {repo} (HTTP {status})",
                                "check that HF_TOKEN may read it (a fine-grained token needs read access to this "
                                "repo)" if token_given else f"if it is private, {TOKEN_HINT}")
    if status == 429:
        return ProviderError(f"the Hugging Face hub is rate-limiting requests for {repo} (HTTP 429)",
                             "wait a few minutes and try again" + (
                                 "" if token_given else "; requests with HF_TOKEN get higher limits"))
    return ProviderError(f"the Hugging Face hub answered HTTP {status} for {repo}",
                         "the hub may be having trouble; try again in a few minutes" if status >= 500 else None)


def token_error() -> CredentialsError:
    """The hub refuses the token itself (expired, revoked, mistyped): every request with it fails."""
    return CredentialsError("the Hugging Face hub rejected HF_TOKEN (invalid, expired or revoked)",
                            f"create a new token on {hub_endpoint()}/settings/tokens, then {TOKEN_HINT}")


def gated_error(repo: str, *, token_given: bool) -> CredentialsError:
    page = f"{hub_endpoint()}/{repo}"
    if token_given:
        return CredentialsError(f"HF_TOKEN has no access to the gated repo {repo}",
                                f"accept the licence on {page} with the account of this token")
    return CredentialsError(f"{repo} is gated and no Hugging Face token is set",
                            f"accept the licence on {page}, then {TOKEN_HINT}")
