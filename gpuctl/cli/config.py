"""``gpuctl config``: read and write the user config file (secrets always shown redacted)."""

from __future__ import annotations

import os

import click
from pydantic import BaseModel

from gpuctl.app import App
from gpuctl.cli.options import json_option
from gpuctl.cli.output import Column, info, print_json, print_rows
from gpuctl.config import ConfigKey, effective_value, find_key, redact

#: how a key found in the file that no installed provider declares is described
UNDECLARED = "not declared by gpuctl or any installed provider ('gpuctl config unset' removes it)"


class ConfigRow(BaseModel):
    key: str
    value: str | float | None
    source: str  # "env NAME", "config", or "unset"
    secret: bool
    description: str


def _row(key: ConfigKey, stored: dict[str, object]) -> ConfigRow:
    value, origin = effective_value(key, stored)
    source = {"env": f"env {key.env}", "config": "config"}.get(origin or "", "unset")
    shown = redact(str(value)) if key.secret and value is not None else value
    return ConfigRow(key=key.name, value=shown, source=source, secret=key.secret,  # type: ignore[arg-type]
                     description=key.description)


def _known(app: App) -> dict[str, ConfigKey]:
    """gpuctl's keys and every installed provider's."""
    return app.registry.config_keys()


def _lookup(app: App, name: str) -> ConfigKey:
    """Key ``name``; unknown is exit 3 with close matches, or the reason when its plugin is broken."""
    owner = name.partition(".")[0]
    broken = next((b for b in app.registry.broken if b.name == owner), None)
    hint = (f"provider plugin '{owner}' failed to load, so its keys are unknown; reinstall or upgrade "
            f"{broken.package or 'it'}" if broken else None)
    return find_key(name, _known(app), unknown_hint=hint)


@click.group()
def config() -> None:
    """Read and write the user config file (GPUCTL_CONFIG_DIR/config.yaml, mode 0600).

    Each installed provider adds its own keys ('gpuctl providers' lists them). Environment
    variables (RUNPOD_API_KEY, LAMBDA_API_KEY, HF_TOKEN, AWS_PROFILE, ...) win over the file.
    """


@config.command("list")
@json_option
@click.pass_obj
def list_(app: App) -> None:
    """Every known key, its effective value (secrets redacted) and where it comes from."""
    stored = app.config.load()
    known = _known(app)
    rows = [_row(key, stored) for key in known.values()]
    # a key left by a plugin no longer installed (or broken): shown, redacted, so it can be found and removed
    rows += [_row(ConfigKey(name, UNDECLARED, secret=True), stored) for name in sorted(stored) if name not in known]
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

    spec = _lookup(app, key)
    row = _row(spec, app.config.load())
    if row.source == "unset":
        raise NotFoundError(f"config key '{key}' is not set", f"gpuctl config set {key} VALUE")
    if app.json:
        print_json(row.model_dump(mode="json"))
    elif reveal and row.secret:
        from gpuctl.credentials import credential_value

        click.echo(credential_value(spec, app.config))
    else:
        click.echo(row.value)


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_obj
def set_(app: App, key: str, value: str) -> None:
    """Store VALUE for KEY in the user config file."""
    spec = _lookup(app, key)
    stored = app.config.set(spec, value)
    info(app, f"set {key} = {redact(str(stored)) if spec.secret else stored} in {app.config.path}")
    if spec.env and os.environ.get(spec.env):
        info(app, f"note: {spec.env} is set in the environment and takes precedence")


@config.command("unset")
@click.argument("key")
@click.pass_obj
def unset(app: App, key: str) -> None:
    """Remove KEY from the user config file (also a key nothing declares any more)."""
    if key not in app.config.load():
        _lookup(app, key)  # a typo is exit 3 with close matches; a known key that is not set is fine
    removed = app.config.unset(key)
    info(app, f"removed {key}" if removed else f"{key} was not set")
