"""The spec checker itself: it must resolve $refs and catch what the specs forbid."""

from __future__ import annotations

import pytest

from tests.standins.openapi import OpenApiSpec, SpecViolation

RUNPOD = OpenApiSpec.load("runpod_rest_v2.json")
LAMBDA = OpenApiSpec.load("lambda_cloud_openapi.json")
PROBLEM = "application/problem+json"


def test_matches_literal_paths_before_templates():
    assert RUNPOD.operation("GET", "/v2/registries/delegations").template == "/v2/registries/delegations"
    assert RUNPOD.operation("get", "/v2/pods/abc123").template == "/v2/pods/{id}"
    with pytest.raises(SpecViolation, match="no documented path matches /v2/nowhere"):
        RUNPOD.operation("GET", "/v2/nowhere")
    with pytest.raises(SpecViolation, match="DELETE is not documented for /v2/catalog/gpus"):
        RUNPOD.operation("DELETE", "/v2/catalog/gpus")


def test_the_specs_own_examples_pass():
    example = RUNPOD.example("GET", "/v2/catalog/gpus")
    assert example["gpus"][0]["id"] == "NVIDIA GeForce RTX 4090"
    RUNPOD.validate_response("GET", "/v2/catalog/gpus", 200, example, content_type="application/json")


@pytest.mark.parametrize(("body", "problem"), [
    ({"gpus": [{"id": "x"}]}, "'name' is a required property"),
    ({"gpus": "none"}, "'none' is not of type 'array'"),
    ({"gpus": [{**RUNPOD.example("GET", "/v2/catalog/gpus")["gpus"][0], "availability": "PLENTY"}]},
     "'PLENTY' is not one of"),  # through $ref to AvailabilityLevel
])
def test_catches_bad_bodies(body, problem):
    with pytest.raises(SpecViolation, match=problem):
        RUNPOD.validate_response("GET", "/v2/catalog/gpus", 200, body, content_type="application/json")


def test_checks_media_type_headers_and_referenced_responses():
    problem = {"title": "Too Many Requests", "status": 429, "detail": "slow down"}
    RUNPOD.validate_response("GET", "/v2/catalog/gpus", 429, problem, content_type=PROBLEM,
                             headers={"Retry-After": "12"})
    with pytest.raises(SpecViolation, match="media type 'application/json' not in"):
        RUNPOD.validate_response("GET", "/v2/catalog/gpus", 429, problem, content_type="application/json")
    with pytest.raises(SpecViolation, match=r"header Retry-After: .* 'soon' is not of type 'integer'"):
        RUNPOD.validate_response("GET", "/v2/catalog/gpus", 429, problem, content_type=PROBLEM,
                                 headers={"retry-after": "soon"})
    with pytest.raises(SpecViolation, match="'detail' is a required property"):
        RUNPOD.validate_response("GET", "/v2/catalog/gpus", 401, {"title": "Unauthorized", "status": 401},
                                 content_type=PROBLEM)


def test_undocumented_statuses_use_the_documented_envelope():
    LAMBDA.validate_response("GET", "/api/v1/instance-types", 503,
                             {"error": {"code": "provider/internal-unavailable", "message": "down"}},
                             content_type="application/json")
    with pytest.raises(SpecViolation, match="'code' is a required property"):
        LAMBDA.validate_response("GET", "/api/v1/instance-types", 503, {"error": {"message": "down"}},
                                 content_type="application/json")
    with pytest.raises(SpecViolation, match="'suggestion' is a required property"):  # 401 is documented
        LAMBDA.validate_response("GET", "/api/v1/instance-types", 401,
                                 {"error": {"code": "global/invalid-api-key", "message": "bad"}},
                                 content_type="application/json")
    with pytest.raises(SpecViolation, match="status not documented"):
        LAMBDA.validate_response("GET", "/api/v1/instance-types", 302, None, content_type=None)


def test_request_checks():
    good = {"include": ["AVAILABILITY"], "product": ["POD,SERVERLESS"], "cloud": ["COMMUNITY"], "count": ["2"]}
    assert RUNPOD.validate_request("GET", "/v2/catalog/gpus", good, None, has_body=False) == []
    bad = {"include": ["EVERYTHING"], "count": ["0"], "colud": ["SECURE"]}
    assert sorted(RUNPOD.validate_request("GET", "/v2/catalog/gpus", bad, None, has_body=False)) == [
        "query parameter 'count': 0 is less than the minimum of 1",
        "query parameter 'include': 'EVERYTHING' is not one of ['AVAILABILITY']",
        "unknown query parameter 'colud'",
    ]
    assert LAMBDA.validate_request("POST", "/api/v1/ssh-keys", {}, None, has_body=False) == [
        "missing required request body"]
    assert LAMBDA.validate_request("POST", "/api/v1/ssh-keys", {}, {"name": ""}, has_body=True) == [
        "body $['name']: '' should be non-empty"]
    assert LAMBDA.validate_request("GET", "/api/v1/instance-types", {}, {"x": 1}, has_body=True) == [
        "the operation takes no request body"]
