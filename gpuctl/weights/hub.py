"""The Hugging Face hub as gpuctl reads it from the user's machine: a repo's file list and small files.

The file list comes from ``GET {HF_ENDPOINT}/api/models/{repo}/revision/{rev}?blobs=true``, the
call behind huggingface_hub's ``model_info(files_metadata=True)``: the commit (``sha``), whether the
repo is gated, and per file ``rfilename``, ``size``, ``blobId`` and, for LFS files, ``lfs.sha256``.
Errors are read the way huggingface_hub reads them, from the ``X-Error-Code`` header.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from gpuctl.envvars import Env
from gpuctl.errors import CredentialsError, GpuctlError, NotFoundError, ProviderError
from gpuctl.weights.models import HubFile, RepoInfo

DEFAULT_ENDPOINT = "https://huggingface.co"
HTTP_TIMEOUT_S = 30.0
TOKEN_HINT = "export HF_TOKEN=... or 'gpuctl config set hf.token VALUE'"


class HubUnreachable(ProviderError):
    """No answer from the hub at all (as opposed to an answer that refuses)."""


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` (a mirror, or the tests' stand-in) or the public hub."""
    return (os.environ.get(Env.HF_ENDPOINT) or DEFAULT_ENDPOINT).rstrip("/")


def repo_info(repo: str, revision: str, *, token: str | None, endpoint: str) -> RepoInfo:
    """The commit ``revision`` points at, whether ``repo`` is gated, and its files with sizes and digests."""
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}"
    data = _get(url, repo, revision, token, params={"blobs": "true"}).json()
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
    return _get(url, repo, commit, token).content


def _get(url: str, repo: str, revision: str, token: str | None, params: dict[str, str] | None = None) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        # httpx drops the Authorization header when a redirect leaves the origin (the hub's storage)
        response = httpx.get(url, params=params, headers=headers, timeout=HTTP_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise HubUnreachable(f"cannot reach the Hugging Face hub at {url.split('/', 3)[2]} ({type(exc).__name__})",
                            "check the network, or HF_ENDPOINT") from exc
    if response.status_code >= 400:
        raise hub_error(response.status_code, response.headers.get("X-Error-Code", ""), repo, revision,
                        token_given=bool(token))
    return response


def hub_error(status: int, code: str, repo: str, revision: str, *, token_given: bool) -> GpuctlError:
    """The gpuctl error for a hub answer: missing repo or revision 3, gated or refused 6, anything else 4."""
    if code == "RepoNotFound" or (status == 401 and not code):
        hint = "check the repo id" + ("" if token_given else f"; if it is private, {TOKEN_HINT}")
        return NotFoundError(f"{repo} does not exist on the hub, or is private", hint)
    if code == "RevisionNotFound":
        return NotFoundError(f"{repo} has no revision '{revision}'", "check the revision in the recipe or hf:REF@REV")
    if code == "EntryNotFound" or status == 404:
        return NotFoundError(f"{repo} at {revision}: file not found (HTTP 404)")
    if status in (401, 403):
        return gated_error(repo, token_given=token_given)
    return ProviderError(f"the Hugging Face hub answered HTTP {status} for {repo}")


def gated_error(repo: str, *, token_given: bool) -> CredentialsError:
    page = f"{hub_endpoint()}/{repo}"
    if token_given:
        return CredentialsError(f"HF_TOKEN has no access to the gated repo {repo}",
                                f"accept the licence on {page} with the account of this token")
    return CredentialsError(f"{repo} is gated and no Hugging Face token is set",
                            f"accept the licence on {page}, then {TOKEN_HINT}")
