"""The project: a directory holding ``gpuctl.yaml`` (defaults) and ``.gpuctl/`` (state)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gpuctl.durations import parse_ttl
from gpuctl.errors import ConfigError, UsageError
from gpuctl.fsutil import atomic_write, read_text_file
from gpuctl.models.recipe import EngineName
from gpuctl.yamlio import load_yaml

PROJECT_FILE = "gpuctl.yaml"
STATE_DIR = ".gpuctl"


class ProjectFile(BaseModel):
    """The defaults a project sets for its commands. Unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    model: str | None = None
    gpu: str | None = None
    provider: str | None = None
    engine: EngineName | None = None
    region: str | None = None
    ttl: str | None = None
    replicas: int | None = Field(default=None, ge=1, description="replicas behind vllm-router ('up --replicas')")
    idle: str | None = None
    budget: float | None = Field(default=None, gt=0)

    @field_validator("ttl", "idle")
    @classmethod
    def _ttl_is_duration(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_ttl(value)
            except UsageError as exc:
                raise ValueError(exc.message) from None
        return value


def find_project_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding gpuctl.yaml or .gpuctl/."""
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file() or (directory / STATE_DIR).is_dir():
            return directory
    return None


def resolve_project_root(explicit: str | os.PathLike[str] | None) -> Path:
    """``--project-dir`` when given, else the nearest project above the cwd, else the cwd itself."""
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not root.is_dir():
            raise UsageError(f"project directory {root} does not exist", "create it or fix --project-dir")
        return root
    cwd = Path.cwd()
    return find_project_root(cwd) or cwd


def load_project_file(root: Path) -> ProjectFile:
    """The validated gpuctl.yaml of ``root`` (empty defaults when absent)."""
    path = root / PROJECT_FILE
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a project file", f"remove or rename {path}")
    if not path.is_file():
        return ProjectFile()
    import yaml

    try:
        data = load_yaml(read_text_file(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from exc
    if data is None:
        return ProjectFile()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return ProjectFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from exc


def write_project_file(root: Path, project: ProjectFile) -> Path:
    import yaml

    path = root / PROJECT_FILE
    body = yaml.safe_dump(project.model_dump(exclude_none=True), sort_keys=False)
    atomic_write(path, "# gpuctl project defaults; every key is optional.\n" + body)
    return path


def describe_validation_error(exc: ValidationError) -> str:
    """First problem of a pydantic error as 'field X: problem', the way users read it."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return f"field '{field}': {message}"
