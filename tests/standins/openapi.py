"""Check requests and responses against an OpenAPI 3.1 spec (JSON Schema 2020-12, $refs resolved).

The specs in ``specs/`` are copies of the providers' published contracts: RunPod's REST v2
``openapi.json`` (runpod/docs ``api-reference-v2/openapi.json``) and Lambda Cloud API v1.10.0
(``https://cloud.lambda.ai/api/v1/openapi.json``). The stand-in servers are checked against
them so that they cannot drift from what the real APIs promise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPECS_DIR = Path(__file__).parent / "specs"
_URI = "urn:gpuctl:openapi-spec"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class SpecViolation(AssertionError):
    """A request or response that the spec does not allow."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pointer: str  # JSON pointer of the operation object in the spec

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.template}"


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _pointer(*segments: str) -> str:
    return "".join("/" + _escape(s) for s in segments)


class OpenApiSpec:
    """One loaded spec. ``undocumented_error`` is the schema for error answers the spec has no
    entry for: statuses it leaves out (Lambda documents no 429 or 5xx, but its overview promises
    one error envelope) and requests matching no operation (404, 405)."""

    def __init__(self, document: dict[str, Any], *, undocumented_error: dict[str, Any] | None = None) -> None:
        self.document = document
        self.undocumented_error = undocumented_error
        self._registry = Registry().with_resource(_URI, DRAFT202012.create_resource(document))
        templates = sorted(document["paths"], key=lambda t: (t.count("{"), t))
        self._routes = [(_path_pattern(t), t) for t in templates]

    @classmethod
    @cache
    def load(cls, name: str) -> OpenApiSpec:
        document = json.loads((SPECS_DIR / name).read_text(encoding="utf-8"))
        return cls(document, undocumented_error=_UNDOCUMENTED.get(name))

    # -- lookup ----------------------------------------------------------------------------------

    def resolve(self, pointer: str) -> tuple[str, Any]:
        """The object at ``pointer``, following ``$ref`` chains of non-schema objects."""
        node: Any = self.document
        for raw in pointer.split("/")[1:]:
            segment = raw.replace("~1", "/").replace("~0", "~")
            node = node[int(segment)] if isinstance(node, list) else node[segment]
        while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
            pointer = node["$ref"][1:]
            node = self.resolve(pointer)[1]
        return pointer, node

    def operation(self, method: str, path: str) -> Operation:
        """The operation serving ``method path`` (a concrete path such as ``/v2/pods/abc``)."""
        method = method.lower()
        for pattern, template in self._routes:
            if pattern.match(path):
                if method not in self.document["paths"][template]:
                    raise SpecViolation(f"{method.upper()} is not documented for {template}")
                return Operation(method, template, _pointer("paths", template, method))
        raise SpecViolation(f"no documented path matches {path}")

    def example(self, method: str, path: str, status: int = 200) -> Any:
        """The first example the spec gives for a response (stand-in data is derived from them)."""
        op = self.operation(method, path)
        _, response = self.resolve(f"{op.pointer}/responses/{status}")
        media = next(iter(response["content"].values()))
        if "examples" in media:
            return next(iter(media["examples"].values()))["value"]
        return media["example"]

    # -- validation ----------------------------------------------------------------------------------

    def validate_response(self, method: str, path: str, status: int, body: Any, *,
                          content_type: str | None, headers: dict[str, str] | None = None) -> None:
        """Raise SpecViolation unless the spec allows this response (status, media type, body, headers)."""
        try:
            op = self.operation(method, path)
        except SpecViolation:
            if self.undocumented_error is None or status < 400:
                raise
            # An error answer to a request the spec has no operation for (404, 405).
            self._check(self.undocumented_error, body, f"{method.upper()} {path} -> {status}")
            return
        responses = self.resolve(op.pointer + "/responses")[1]
        where = f"{op.key} -> {status}"
        key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
        if key is None:
            if self.undocumented_error is None or status < 400:
                raise SpecViolation(f"{where}: status not documented")
            self._check(self.undocumented_error, body, where)
            return
        pointer, response = self.resolve(f"{op.pointer}/responses/{key}")
        content = response.get("content") or {}
        media_type = (content_type or "").split(";")[0].strip().lower()
        if not content:
            if body not in (None, b"", ""):
                raise SpecViolation(f"{where}: the spec documents no body")
        elif media_type not in content:
            raise SpecViolation(f"{where}: media type {media_type!r} not in {sorted(content)}")
        elif "schema" in content[media_type]:
            self._check({"$ref": self._ref(pointer, "content", media_type, "schema")}, body, where)
        for name in response.get("headers") or {}:
            value = _header(headers or {}, name)
            if value is not None:
                header_pointer, spec = self.resolve(pointer + _pointer("headers", name))
                if "schema" in spec:
                    self._check({"$ref": self._ref(header_pointer, "schema")},
                                _coerce(value, self.resolve(header_pointer + "/schema")[1]),
                                f"{where} header {name}")

    def validate_request(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                         *, has_body: bool) -> list[str]:
        """What is wrong with a request (unknown or invalid query parameters, body); empty when fine."""
        op = self.operation(method, path)
        operation = self.resolve(op.pointer)[1]
        params = {}
        for index, _ in enumerate(operation.get("parameters", [])):
            pointer, param = self.resolve(f"{op.pointer}/parameters/{index}")
            params[(param["in"], param["name"])] = (pointer, param)
        for index, _ in enumerate(self.resolve(_pointer("paths", op.template))[1].get("parameters", [])):
            pointer, param = self.resolve(_pointer("paths", op.template, "parameters", str(index)))
            params.setdefault((param["in"], param["name"]), (pointer, param))
        errors = [f"unknown query parameter {name!r}" for name in query if ("query", name) not in params]
        for (where, name), (pointer, param) in params.items():
            if where != "query":
                continue
            if name not in query:
                if param.get("required"):
                    errors.append(f"missing required query parameter {name!r}")
                continue
            schema = self.resolve(pointer + "/schema")[1]
            value = _query_value(query[name], param, schema)
            errors += [f"query parameter {name!r}: {e.message}"
                       for e in self._errors({"$ref": self._ref(pointer, "schema")}, value)]
        if "requestBody" in operation:
            pointer, request_body = self.resolve(op.pointer + "/requestBody")
            if not has_body:
                if request_body.get("required"):
                    errors.append("missing required request body")
            elif "application/json" in request_body.get("content", {}):
                ref = self._ref(pointer, "content", "application/json", "schema")
                errors += [f"body {_loc(e)}: {e.message}" for e in self._errors({"$ref": ref}, body)]
        elif has_body:
            errors.append("the operation takes no request body")
        return errors

    # -- helpers ----------------------------------------------------------------------------------------

    def _ref(self, pointer: str, *more: str) -> str:
        return _URI + "#" + quote(pointer + _pointer(*more), safe="/~")

    def _errors(self, schema: dict[str, Any], value: Any) -> list[Any]:
        return list(Draft202012Validator(schema, registry=self._registry).iter_errors(value))

    def _check(self, schema: dict[str, Any], value: Any, where: str) -> None:
        errors = self._errors(schema, value)
        if errors:
            first = min(errors, key=lambda e: len(list(e.absolute_path)))
            raise SpecViolation(f"{where}: {_loc(first)}: {first.message}"
                                + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))


def _path_pattern(template: str) -> re.Pattern[str]:
    """``/v2/pods/{id}`` -> a regex matching ``/v2/pods/<one segment>``."""
    literals = re.split(r"\{[^/}]+\}", template)
    return re.compile("^" + "[^/]+".join(re.escape(p) for p in literals) + "$")


def _loc(error: Any) -> str:
    return "$" + "".join(f"[{p!r}]" for p in error.absolute_path)


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _coerce(text: str, schema: dict[str, Any]) -> Any:
    """A header or query string as the JSON value its schema describes."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def _query_value(values: list[str], param: dict[str, Any], schema: dict[str, Any]) -> Any:
    if schema.get("type") != "array":
        return _coerce(values[-1], schema)
    explode = param.get("explode", param.get("style", "form") == "form")
    items = values if explode else [v for value in values for v in value.split(",")]
    return [_coerce(v, schema.get("items", {})) for v in items]


# The error envelope Lambda's overview promises for every failure, for the statuses its
# per-path responses leave out (429, 5xx).
_LAMBDA_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "suggestion": {"type": "string"},
            },
        },
    },
}
_UNDOCUMENTED = {
    "lambda_cloud_openapi.json": _LAMBDA_ERROR,
    "runpod_rest_v2.json": {"$ref": f"{_URI}#/components/schemas/ErrorResponse"},
}
