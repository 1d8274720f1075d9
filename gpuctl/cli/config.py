"""``gpuctl config``: read and write the user config file (secrets always shown redacted)."""

from __future__ import annotations

import os

import click
from pydantic import BaseModel

from gpuctl.app import App
from gpuctl.cli.options import json_option
from gpuctl.cli.output import Column, info, print_json, print_rows
from gpuctl.config import KEYS, config_key, effective_value, redact


class ConfigRow(BaseModel):
    key: str
    value: str | float | None
    source: str  # "env NAME", "config", or "unset"
    secret: bool
    description: str


def _row(name: str, stored: dict[str, object]) -> ConfigRow:
    spec = KEYS[name]
    value, origin = effective_value(name, stored)
    source = {"env": f"env {spec.env}", "config": "config"}.get(origin or "", "unset")
    shown = redact(str(value)) if spec.secret and value is not None else value
    return ConfigRow(key=name, value=shown, source=source, secret=spec.secret,  # type: ignore[arg-type]
                     description=spec.description)


@click.group()
def config() -> None:
    """Read and write the user config file (GPUCTL_CONFIG_DIR/config.yaml, mode 0600).

    Environment variables (RUNPOD_API_KEY, LAMBDA_API_KEY, HF_TOKEN, AWS_PROFILE) win over the file.
    """


@config.command("list")
@json_option
@click.pass_obj
def list_(app: App) -> None:
    """Every known key, its effective value (secrets redacted) and where it comes from."""
    stored = app.config.load()
    rows = [_row(name, stored) for name in KEYS]
    print_rows(app, rows, [Column("KEY", "key"), Column("VALUE", "value"), Column("SOURCE", "source"),
                           Column("DESCRIPTION", "description")], empty="no keys")


@config.command("get")
@click.argument("key")
@click.option("--reveal", is_flag=True, help="Print a secret's real value instead of a redacted one.")
@json_option
@click.pass_obj
def get(app: App, key: str, reveal: bool) -> None:
    """Print the effective value of KEY (exit 3 when unset)."""
    from gpuctl.errors import NotFoundError

    config_key(key)
    row = _row(key, app.config.load())
    if row.source == "unset":
        raise NotFoundError(f"config key '{key}' is not set", f"gpuctl config set {key} VALUE")
    if app.json:
        print_json(row.model_dump(mode="json"))
    elif reveal and row.secret:
        from gpuctl.credentials import credential_value

        click.echo(credential_value(key, app.config))
    else:
        click.echo(row.value)


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_obj
def set_(app: App, key: str, value: str) -> None:
    """Store VALUE for KEY in the user config file."""
    spec = config_key(key)
    stored = app.config.set(key, value)
    info(app, f"set {key} = {redact(str(stored)) if spec.secret else stored} in {app.config.path}")
    if spec.env and os.environ.get(spec.env):
        info(app, f"note: {spec.env} is set in the environment and takes precedence")


@config.command("unset")
@click.argument("key")
@click.pass_obj
def unset(app: App, key: str) -> None:
    """Remove KEY from the user config file."""
    removed = app.config.unset(key)
    info(app, f"removed {key}" if removed else f"{key} was not set")
