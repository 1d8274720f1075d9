"""Every bad input of tests/badinput/cases.py: one error line with a hint, the documented exit code, files kept.

Run only this suite with ``python -m pytest -q tests/badinput``; add a case to cases.py, not a test here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from tests.badinput.case import CLOSED, DIR, Case
from tests.badinput.cases import CASES

#: every provider API aimed at a closed loopback port: a case that reaches one fails fast, never leaves the machine
NO_NETWORK = {"GPUCTL_RUNPOD_API_URL": CLOSED, "GPUCTL_LAMBDA_API_URL": CLOSED, "AWS_ENDPOINT_URL": CLOSED,
              "HF_ENDPOINT": CLOSED}


def where(path: str, project: Path) -> Path:
    """A case's file path on disk: ``config:`` and ``home:`` prefixes, else relative to the project."""
    for prefix, variable in (("config:", "GPUCTL_CONFIG_DIR"), ("home:", "HOME")):
        if path.startswith(prefix):
            return Path(os.environ[variable]) / path[len(prefix):]
    return project / path


def write_files(case: Case, project: Path) -> dict[Path, bytes | None]:
    """Write the case's files; returns what each holds (None for a directory) to compare afterwards."""
    written: dict[Path, bytes | None] = {}
    for name, content in case.files.items():
        path = where(name, project)
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            path.mkdir()
            written[path] = None
            continue
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        written[path] = data
    return written


def seed_deployments(case: Case, project: Path) -> None:
    from gpuctl.models.deployment import Deployment
    from gpuctl.state import StateStore

    with StateStore(project).transaction() as state:
        for name, fields in case.deployments.items():
            values = {"model": "qwen2.5-0.5b", "provider": "runpod", "status": "running",
                      "idempotency_token": f"tok-{name}", "gpu": "L40S", "gpu_count": 1, "price_per_hour": 0.9,
                      **fields}
            state.deployments[name] = Deployment.model_validate({"name": name, **values})


def unchanged(written: dict[Path, bytes | None]) -> Iterator[str]:
    for path, data in written.items():
        if data is None:
            if not path.is_dir():
                yield f"{path} is no longer a directory"
        elif not path.is_file() or path.read_bytes() != data:
            yield f"{path} was changed"


def params() -> list[object]:
    marks = {case.id: pytest.mark.xfail(strict=True, reason=case.xfail) for case in CASES if case.xfail}
    return [pytest.param(case, id=case.id, marks=marks.get(case.id, ())) for case in CASES]


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 150


@pytest.mark.parametrize("case", params())
def test_a_bad_input_is_one_line_with_its_documented_code(case: Case, gpuctl: Callable[..., Result],
                                                          isolated: Path) -> None:
    if case.deployments:
        seed_deployments(case, isolated)
    written = write_files(case, isolated)
    result = gpuctl(*case.argv, env={**NO_NETWORK, **case.env}, input="")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr + result.stdout
    assert (result.exit_code, len(errors)) == (case.code, 1), result.stderr
    assert re.search(case.message, errors[0]), errors[0]
    assert "(hint: " in errors[0], errors[0]
    assert result.stderr.splitlines()[-1] == errors[0], "the error is the last line: nothing continues it"
    assert list(unchanged(written)) == []
