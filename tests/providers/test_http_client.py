"""The shared JSON API client: retries, deadlines, error mapping (httpx MockTransport, fake clock)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from pydantic import BaseModel

from gpuctl.config import ConfigKey
from gpuctl.errors import ConfigError, CredentialsError, NotFoundError, ProviderError, TimeoutError_
from gpuctl.providers.http import (
    ErrorInfo,
    JsonApiClient,
    ProviderHttpError,
    QuotaWindow,
    RetryPolicy,
    base_url_from_env,
    parse_rate_limit,
    require_credential,
    retry_after_seconds,
)

KEY = "test-key-abcdefghijklmnop"


class Thing(BaseModel):
    name: str
    size: int


DEMO_KEY = ConfigKey("demo.api_key", "Demo API key", secret=True, env="DEMO_API_KEY", credential=True)


class DemoApi(JsonApiClient):
    provider = "Demo"
    api_prefix = "/v9"
    credential = DEMO_KEY

    def describe_error(self, status, payload):
        if isinstance(payload, dict) and "why" in payload:
            return ErrorInfo(status=status, message=payload["why"], code=payload.get("code"))
        return None


class FakeTime:
    """A clock that only moves when the client sleeps (or a request 'takes' time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(answers, *, timeout=10.0, retry=None, seen=None):
    """A client whose server gives ``answers`` in turn (httpx.Response, or an exception to raise)."""
    fake = FakeTime()
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = DemoApi(KEY, "https://api.example.test", timeout=timeout, retry=retry, sleep=fake.sleep,
                     clock=fake.clock, transport=httpx.MockTransport(handler))
    return client, fake


def ok(body=None, status=200, **headers):
    return httpx.Response(status, json=body if body is not None else {"name": "a", "size": 1}, headers=headers)


def test_get_validates_the_answer_and_sends_bearer_auth():
    seen = []
    client, _ = make([ok()], seen=seen)
    assert client.get("/things/a", Thing, params={"x": 1}) == Thing(name="a", size=1)
    assert str(seen[0].url) == "https://api.example.test/v9/things/a?x=1"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert seen[0].headers["user-agent"].startswith("gpuctl/")


@pytest.mark.parametrize("base", ["https://api.example.test", "https://api.example.test/",
                                  "https://api.example.test/v9", "https://api.example.test/v9/"])
def test_prefix_is_added_once(base):
    assert DemoApi(KEY, base).base_url == "https://api.example.test/v9"


def test_retry_after_is_honoured():
    client, fake = make([ok({}, 429, **{"Retry-After": "2"}), ok()])
    assert client.request("GET", "/t") == {"name": "a", "size": 1}
    assert fake.sleeps == [2.0]


def test_backoff_doubles_without_retry_after_and_gives_up_after_max_retries():
    seen = []
    client, fake = make([ok({"why": "overloaded"}, 503)], seen=seen)
    with pytest.raises(ProviderHttpError) as err:
        client.request("GET", "/t")
    assert fake.sleeps == [0.5, 1.0, 2.0]
    assert len(seen) == 4
    assert err.value.message == "Demo API failed on GET /t (503: overloaded)"
    assert err.value.info.status == 503


def test_total_wait_is_bounded():
    client, fake = make([ok({}, 500)], retry=RetryPolicy(max_retries=10, backoff_s=1.0, max_wait_s=4.0))
    with pytest.raises(ProviderError):
        client.request("GET", "/t")
    assert fake.sleeps == [1.0, 2.0]  # the next wait (4 s) would exceed max_wait_s


def test_retry_after_beyond_the_deadline_fails_without_sleeping():
    client, fake = make([ok({"why": "slow down"}, 429, **{"Retry-After": "3"})], timeout=2.0)
    with pytest.raises(ProviderError) as err:
        client.request("GET", "/t")
    assert fake.sleeps == []
    assert err.value.message == "Demo API rate limit hit (429: slow down)"
    assert err.value.hint == "wait a minute and try again"


def test_post_is_not_retried_on_server_errors_but_is_on_429():
    seen = []
    client, fake = make([ok({}, 500), ok()], seen=seen)
    with pytest.raises(ProviderError):
        client.request("POST", "/launch", json_body={"a": 1})
    assert len(seen) == 1 and fake.sleeps == []
    client, fake = make([ok({}, 429, **{"Retry-After": "1"}), ok()], seen=seen)
    assert client.request("POST", "/launch", json_body={"a": 1}) == {"name": "a", "size": 1}
    assert fake.sleeps == [1.0]
    assert json.loads(seen[-1].content) == {"a": 1}


def test_connect_errors_are_retried_for_any_method():
    client, fake = make([httpx.ConnectError("refused"), ok()])
    assert client.request("POST", "/t") == {"name": "a", "size": 1}
    assert fake.sleeps == [0.5]


def test_broken_answer_is_retried_only_when_idempotent():
    client, _ = make([httpx.RemoteProtocolError("peer closed"), ok()])
    assert client.request("GET", "/t") == {"name": "a", "size": 1}
    client, _ = make([httpx.RemoteProtocolError("peer closed"), ok()])
    with pytest.raises(ProviderError, match="Demo API connection broke during POST /t: RemoteProtocolError"):
        client.request("POST", "/t")


def test_timeout_is_a_timeout_error():
    client, _ = make([httpx.ReadTimeout("slow")], timeout=3)
    with pytest.raises(TimeoutError_) as err:
        client.request("GET", "/t")
    assert err.value.exit_code == 7
    assert err.value.message == "Demo API did not answer GET /t within 3 s"


@pytest.mark.parametrize(("status", "kind", "words"), [
    (401, CredentialsError, "Demo rejected the API key (401: nope)"),
    (403, CredentialsError, "Demo refused access with this API key (403: nope)"),
    (404, NotFoundError, "Demo: GET /t found nothing (404: nope)"),
    (400, ProviderHttpError, "Demo API failed on GET /t (400: nope)"),
])
def test_error_statuses_map_to_gpuctl_errors(status, kind, words):
    client, fake = make([ok({"why": "nope"}, status)])
    with pytest.raises(kind) as err:
        client.request("GET", "/t")
    assert type(err.value) is kind
    assert err.value.message == words
    assert fake.sleeps == []
    if status in (401, 403):
        assert err.value.hint.endswith("export DEMO_API_KEY=... or gpuctl config set demo.api_key VALUE")


def test_empty_body_is_none_and_bad_json_is_a_provider_error():
    client, _ = make([httpx.Response(204)])
    assert client.request("DELETE", "/t") is None
    client, _ = make([httpx.Response(200, content=b"<html>")])
    with pytest.raises(ProviderError, match=r"Demo API sent invalid JSON .* \(status 200: JSONDecodeError"):
        client.request("GET", "/t")


def test_parse_names_the_first_bad_field_without_echoing_values():
    client, _ = make([ok({"name": "a", "size": "secret-looking-value"})])
    with pytest.raises(ProviderError) as err:
        client.get("/t", Thing)
    assert err.value.message == ("Demo API sent an unexpected answer to GET /t: field 'size': "
                                 "Input should be a valid integer, unable to parse string as an integer")
    assert "secret-looking-value" not in err.value.one_line()


def test_echoed_key_is_masked():
    client, _ = make([ok({"why": f"bad key {KEY}"}, 400)])
    with pytest.raises(ProviderError) as err:
        client.request("GET", "/t")
    assert KEY not in err.value.one_line() and "bad key ****" in err.value.message


def test_retry_after_parsing():
    now = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds("-4") == 0.0
    assert retry_after_seconds(later, now=now.timestamp()) == 7.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True),
                               now=now.timestamp()) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_base_url_from_env(monkeypatch):
    assert base_url_from_env("GPUCTL_RUNPOD_API_URL", "https://api.runpod.io") == "https://api.runpod.io"
    monkeypatch.setenv("GPUCTL_RUNPOD_API_URL", "http://127.0.0.1:8101")
    assert base_url_from_env("GPUCTL_RUNPOD_API_URL", "https://api.runpod.io") == "http://127.0.0.1:8101"
    monkeypatch.setenv("GPUCTL_RUNPOD_API_URL", "127.0.0.1:8101")
    with pytest.raises(ConfigError) as err:
        base_url_from_env("GPUCTL_RUNPOD_API_URL", "https://api.runpod.io")
    assert err.value.exit_code == 2
    assert "GPUCTL_RUNPOD_API_URL='127.0.0.1:8101' is not an http(s) URL" in err.value.message


def test_require_credential_reads_env_then_config(monkeypatch):
    with pytest.raises(CredentialsError) as err:
        require_credential(DEMO_KEY, "Demo")
    assert err.value.hint == "export DEMO_API_KEY=... or gpuctl config set demo.api_key VALUE"
    from gpuctl.config import UserConfig

    UserConfig().set(DEMO_KEY, "from-config-file-123")
    assert require_credential(DEMO_KEY, "Demo") == "from-config-file-123"
    monkeypatch.setenv("DEMO_API_KEY", "from-env-456")
    assert require_credential(DEMO_KEY, "Demo") == "from-env-456"


def test_help_does_not_import_httpx():
    import subprocess
    import sys

    code = "import sys; from gpuctl.__main__ import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "print('httpx' in sys.modules, 'gpuctl.providers.http' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_importing_the_providers_does_not_import_httpx():
    import subprocess
    import sys

    code = ("import sys, gpuctl.providers.runpod.provider, gpuctl.providers.lambda_cloud.provider; "
            "print('httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_retry_after_too_long_to_wait_travels_with_the_error():
    # RunPod's 429 (spec components.responses.TooManyRequestsError): Retry-After in seconds per exceeded window
    client, fake = make([ok({"why": "rate limit exceeded for the minute window"}, 429, **{"Retry-After": "30"})])
    with pytest.raises(ProviderHttpError) as err:
        client.request("GET", "/t")
    assert fake.sleeps == [] and err.value.info.retry_after == 30.0  # a caller with time to spare may wait it out


def test_rate_limit_headers_are_read_as_windows():
    # the spec's RateLimit example (RateLimitHeader)
    assert parse_rate_limit('"minute";r=0;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012') == [
        QuotaWindow("minute", 0, 12.0), QuotaWindow("hour", 2800, 1812.0), QuotaWindow("day", 49500, 45012.0)]
    assert parse_rate_limit('"minute";r=5, garbage, "hour";r=x;t=1') == []
    assert parse_rate_limit(None) == []


def test_pace_shares_the_quota_left_out_until_its_window_resets():
    client, fake = make([ok(**{"RateLimit": '"minute";r=10;t=30, "hour";r=2800;t=1812'})])
    assert client.pace(2) == 0.0  # nothing reported yet
    client.request("GET", "/t")
    assert client.pace(2) == 6.0  # 30 s over 10 requests, 2 at a time
    fake.now += 10
    assert client.pace(2) == 4.0  # the window resets sooner now
    client, _ = make([ok(**{"RateLimit": '"minute";r=1;t=20'})])
    client.request("GET", "/t")
    assert client.pace(2) == 20.0  # fewer left than needed: wait for the reset
