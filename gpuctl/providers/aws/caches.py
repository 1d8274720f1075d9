"""The AWS weights cache: an S3 bucket per region (docs/weights.md), and the mirror the fetcher reads and fills.

The bucket is ``gpuctl-hf-cache-ACCOUNT-REGION`` (bucket names are global; the account keeps two
users' apart), private (public access blocked), encrypted by default (SSE-S3), tagged with gpuctl's
tags, and told to abort multipart uploads left open (a run killed halfway) after ``ABORT_AFTER_DAYS``.
One folder per repo, named as on a host::

    models--ORG--NAME/blobs/DIGEST            one verified file, named by its sha256 or git blob id
    models--ORG--NAME/manifests/COMMIT.json   the model's files; written last, once every blob is there

Which blobs the bucket has is decided by listing: an object exists only once its PUT (or the
completion of its multipart upload) succeeded, so an object with the manifest's size is a whole
upload, and the fetcher verifies its digest as it copies it (a copy that fails is deleted here and
uploaded again). The instance has no IAM role: it gets pre-signed URLs, valid ``URL_EXPIRES_S``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gpuctl.errors import ProviderError, UsageError
from gpuctl.models.weights_cache import CACHE_NAME_PREFIX, WeightsCache
from gpuctl.providers.aws.client import aws_errors
from gpuctl.providers.aws.mapping import NAME
from gpuctl.weights.fetcher import repo_folder
from gpuctl.weights.mirror import BlobUpload, MirrorJob, MirrorOutcome, MirrorResult

if TYPE_CHECKING:
    from gpuctl.weights.models import Manifest, WeightFile

#: how long the fetcher's URLs work: a 140 GB model from a slow hub (10 MB/s) takes about 4 hours, and
#: the uploads follow each file's download. Temporary credentials (SSO, assumed roles) end them sooner.
URL_EXPIRES_S = 6 * 3600
#: a file larger than one part goes up in parts (S3 takes 5 GiB at most in one PUT, parts of 5 MiB at
#: least): a failed part is retried alone, and a 5 GB shard needs 20 URLs
PART_SIZE = 256 * 1024 * 1024
MAX_PARTS = 10_000
#: multipart uploads nobody completed (gpuctl killed mid-run) cost storage until aborted
ABORT_AFTER_DAYS = 2
#: the folders gpuctl writes (``used_bytes`` counts these)
REPO_PREFIX = "models--"
_BLOCK_PUBLIC = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                 "RestrictPublicBuckets": True}


def bucket_name(account: str, region: str) -> str:
    return f"{CACHE_NAME_PREFIX}{account}-{region}"


def blob_key(repo: str, digest: str) -> str:
    return f"{repo_folder(repo)}/blobs/{digest}"


def manifest_key(repo: str, commit: str) -> str:
    return f"{repo_folder(repo)}/manifests/{commit}.json"


def objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def _cache(s3: Any, bucket: str, region: str, created: Any = None) -> WeightsCache:
    # one listing per bucket: a model is ~35 objects, so a page of 1000 covers dozens of models
    used = sum(o["Size"] for o in objects(s3, bucket, REPO_PREFIX))
    return WeightsCache(provider=NAME, id=bucket, name=bucket, region=region, kind="s3-bucket",
                        used_bytes=used, created_at=created)


def list_caches(s3_in: Callable[[str], Any], home_region: str) -> list[WeightsCache]:
    """gpuctl's buckets of this account, in every region (``s3_in(region)`` gives a client there)."""
    found = []
    for bucket in s3_in(home_region).list_buckets().get("Buckets", []):  # its Prefix needs boto3 1.35
        name = bucket["Name"]
        if not name.startswith(CACHE_NAME_PREFIX):
            continue
        region = bucket.get("BucketRegion") or (
            s3_in(home_region).get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1")
        found.append(_cache(s3_in(region), name, region, bucket.get("CreationDate")))
    return found


def ensure_bucket(s3: Any, bucket: str, region: str, tags: dict[str, str]) -> WeightsCache:
    """The bucket, created private, encrypted and tagged when it does not exist (a concurrent create is fine)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return _cache(s3, bucket, region)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "403":  # HeadBucket says only this much: the name exists and is not ours to read
            raise _taken(bucket) from exc
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    options = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, **options)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "BucketAlreadyExists":  # owned by another account: the name is taken for good
            raise _taken(bucket) from exc
        if code != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=_BLOCK_PUBLIC)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [{
        "ID": "gpuctl-abort-unfinished-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_AFTER_DAYS}}]})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]})
    return _cache(s3, bucket, region)


def _taken(bucket: str) -> ProviderError:
    return ProviderError(f"the S3 bucket {bucket} exists but these credentials cannot use it",
                         "it belongs to another account (delete it there), or allow s3:ListBucket on it")


def delete_bucket(s3: Any, bucket: str) -> None:
    """Empty the bucket (objects and unfinished uploads), then delete it; nothing to do when it is gone."""
    from botocore.exceptions import ClientError

    if not bucket.startswith(CACHE_NAME_PREFIX):
        raise UsageError(f"{bucket} is not a gpuctl weights cache; not deleting it")
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:  # a page holds at most 1000 keys, as many as one DeleteObjects takes
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise


class S3Mirror:
    """The bucket as a :class:`gpuctl.weights.mirror.WeightsMirror`: ``plan`` before a fetch, ``finish`` after it."""

    def __init__(self, s3: Any, bucket: str, *, expires_s: int = URL_EXPIRES_S, part_size: int = PART_SIZE) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.where = f"s3://{bucket}"
        self.expires_s = expires_s
        self.part_size = part_size
        #: what the last plan asked the fetcher to upload: digest -> multipart upload id (None: one PUT)
        self._uploads: dict[str, str | None] = {}

    def plan(self, manifest: Manifest) -> MirrorJob:
        with aws_errors():
            held = self._held(manifest.repo)
            job = MirrorJob()
            for entry in _unique(manifest.files):
                key = blob_key(manifest.repo, entry.digest)
                if held.get(key) == entry.size:
                    job.sources[entry.digest] = self._presign("get_object", Key=key)
                else:
                    job.uploads[entry.digest] = self._upload(key, entry)
        return job

    def finish(self, manifest: Manifest, outcome: MirrorOutcome) -> MirrorResult:
        from botocore.exceptions import ClientError

        added: list[str] = []
        with aws_errors():
            for digest, upload_id in self._uploads.items():
                key = blob_key(manifest.repo, digest)
                etags = outcome.uploaded.get(digest)
                if upload_id is None:
                    added += [digest] if etags is not None else []
                    continue
                try:
                    if etags:
                        self.s3.complete_multipart_upload(
                            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={
                                "Parts": [{"PartNumber": n, "ETag": tag} for n, tag in enumerate(etags, 1)]})
                        added.append(digest)
                        continue
                except ClientError:  # a part went missing: this blob is uploaded again next time
                    pass
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            self._uploads = {}
            for digest in outcome.corrupt:
                self.s3.delete_object(Bucket=self.bucket, Key=blob_key(manifest.repo, digest))
            held = self._held(manifest.repo)
            complete = all(held.get(blob_key(manifest.repo, f.digest)) == f.size for f in manifest.files)
            key = manifest_key(manifest.repo, manifest.commit)
            if complete and (added or key not in held):
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=manifest.model_dump_json(indent=1).encode(),
                                   ContentType="application/json")
            elif not complete and key in held:  # a copy was dropped: the model is no longer whole there
                self.s3.delete_object(Bucket=self.bucket, Key=key)
        return MirrorResult(added=sorted(added), dropped=sorted(outcome.corrupt), complete=complete)

    def abort_uploads(self, repo: str) -> int:
        """Abort the multipart uploads under ``repo``'s folder (an interrupted fill's); how many."""
        aborted = 0
        with aws_errors():
            for page in self.s3.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=repo_folder(repo) + "/"):
                for upload in page.get("Uploads", []):
                    self.s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    def _held(self, repo: str) -> dict[str, int]:
        return {o["Key"]: o["Size"] for o in objects(self.s3, self.bucket, repo_folder(repo) + "/")}

    def _upload(self, key: str, entry: WeightFile) -> BlobUpload:
        if entry.size <= self.part_size:
            self._uploads[entry.digest] = None
            return BlobUpload(url=self._presign("put_object", Key=key))
        part_size = max(self.part_size, math.ceil(entry.size / MAX_PARTS))
        upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        self._uploads[entry.digest] = upload_id
        return BlobUpload(part_size=part_size, parts=[
            self._presign("upload_part", Key=key, UploadId=upload_id, PartNumber=n)
            for n in range(1, math.ceil(entry.size / part_size) + 1)])

    def _presign(self, operation: str, **params: Any) -> str:
        return self.s3.generate_presigned_url(operation, Params={"Bucket": self.bucket, **params},
                                              ExpiresIn=self.expires_s)


def _unique(files: list[WeightFile]) -> list[WeightFile]:
    """One entry per blob: two names with the same content share a digest."""
    return list({f.digest: f for f in files}.values())
