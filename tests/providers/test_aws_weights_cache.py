"""The AWS weights cache as the provider manages it: one S3 bucket per region (moto, in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gpuctl.errors import UsageError
from gpuctl.models.weights_cache import WeightsCache
from gpuctl.providers.aws.caches import ABORT_AFTER_DAYS, S3Mirror
from gpuctl.providers.aws.provider import AWSProvider

ACCOUNT = "123456789012"  # moto's
TAGS = {"gpuctl-managed": "true", "gpuctl-project": "p-1"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AWSProvider]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        yield AWSProvider()


def s3(region: str = "us-east-1") -> Any:
    return boto3.client("s3", region_name=region)


def test_the_bucket_is_created_once_private_encrypted_and_tagged_then_reused(aws: AWSProvider) -> None:
    cache = aws.ensure_weights_cache("eu-west-1", min_gb=200, tags=TAGS)
    name = f"gpuctl-hf-cache-{ACCOUNT}-eu-west-1"
    assert cache.model_dump(exclude={"created_at"}) == WeightsCache(
        provider="aws", id=name, name=name, region="eu-west-1", kind="s3-bucket", used_bytes=0).model_dump(
        exclude={"created_at"})
    client = s3("eu-west-1")
    assert client.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    assert {t["Key"]: t["Value"] for t in client.get_bucket_tagging(Bucket=name)["TagSet"]} == TAGS
    assert client.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    [rule] = client.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    [lifecycle] = client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert lifecycle["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": ABORT_AFTER_DAYS}

    client.put_object(Bucket=name, Key="models--o--m/blobs/abc", Body=b"x" * 1000)
    client.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "mine", "Value": "kept"}]})
    again = aws.ensure_weights_cache("eu-west-1", min_gb=10, tags={"gpuctl-project": "other"})
    assert (again.id, again.used_bytes) == (name, 1000)
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [name]
    assert client.get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "mine", "Value": "kept"}]  # not created again


def test_us_east_1_needs_no_location_constraint(aws: AWSProvider) -> None:
    cache = aws.ensure_weights_cache("us-east-1", min_gb=10, tags=TAGS)
    assert s3().get_bucket_location(Bucket=cache.id)["LocationConstraint"] in (None, "us-east-1")


def test_caches_are_listed_in_every_region_with_what_they_hold(aws: AWSProvider) -> None:
    aws.ensure_weights_cache("us-east-1", min_gb=10, tags=TAGS)
    west = aws.ensure_weights_cache("us-west-2", min_gb=10, tags=TAGS)
    s3("us-west-2").put_object(Bucket=west.id, Key="models--o--m/blobs/abc", Body=b"x" * 300)
    s3("us-west-2").put_object(Bucket=west.id, Key="models--o--m/manifests/c.json", Body=b"{}")
    s3("us-west-2").put_object(Bucket=west.id, Key="notes.txt", Body=b"not gpuctl's" * 100)
    s3().create_bucket(Bucket="somebody-elses-bucket")
    found = sorted(aws.weights_caches(), key=lambda c: c.region)
    assert [(c.name, c.region, c.kind, c.used_bytes) for c in found] == [
        (f"gpuctl-hf-cache-{ACCOUNT}-us-east-1", "us-east-1", "s3-bucket", 0),
        (f"gpuctl-hf-cache-{ACCOUNT}-us-west-2", "us-west-2", "s3-bucket", 302)]
    assert all(c.created_at is not None and c.mount_path is None and c.size_gb is None for c in found)


def test_delete_empties_the_bucket_first_and_is_idempotent(aws: AWSProvider) -> None:
    cache = aws.ensure_weights_cache("eu-west-1", min_gb=10, tags=TAGS)
    client = s3("eu-west-1")
    for n in range(3):
        client.put_object(Bucket=cache.id, Key=f"models--o--m/blobs/{n}", Body=b"x")
    client.create_multipart_upload(Bucket=cache.id, Key="models--o--m/blobs/big")
    aws.delete_weights_cache(cache)
    assert client.list_buckets()["Buckets"] == []
    aws.delete_weights_cache(cache)  # already gone
    assert aws.weights_caches() == []


def test_delete_refuses_a_bucket_gpuctl_did_not_name(aws: AWSProvider) -> None:
    s3().create_bucket(Bucket="precious")
    cache = WeightsCache(provider="aws", id="precious", name="precious", region="us-east-1", kind="s3-bucket")
    with pytest.raises(UsageError, match="not a gpuctl weights cache"):
        aws.delete_weights_cache(cache)
    assert [b["Name"] for b in s3().list_buckets()["Buckets"]] == ["precious"]


def test_the_provider_hands_out_the_bucket_as_a_mirror(aws: AWSProvider) -> None:
    cache = aws.ensure_weights_cache("eu-west-1", min_gb=10, tags=TAGS)
    mirror = aws.weights_mirror(cache)
    assert isinstance(mirror, S3Mirror) and mirror.where == f"s3://{cache.id}"
