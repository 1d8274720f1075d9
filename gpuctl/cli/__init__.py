"""The ``gpuctl`` root command: global options, lazy subcommands, and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from gpuctl import __version__
from gpuctl.cli.lazy import LazyGroup
from gpuctl.envvars import Env, truthy
from gpuctl.errors import ExitCode, GpuctlError


def _print_traceback() -> None:
    """The traceback of the error being handled (GPUCTL_DEBUG=1); imported here, never at start-up."""
    import traceback

    traceback.print_exc()


def _report(line: str) -> None:
    click.echo(f"error: {line}", err=True)


def run_translated(invoke: Callable[[], Any]) -> int:
    """Run ``invoke`` and turn whatever it raises into one stderr line and a documented exit code."""
    debug = truthy(os.environ.get(Env.DEBUG))
    try:
        result = invoke()
        return result if isinstance(result, int) else ExitCode.OK
    except GpuctlError as exc:
        if debug:
            _print_traceback()
        if exc.message:
            _report(exc.one_line())
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        return ExitCode.OK
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "gpuctl"
        _report(f"{' '.join(exc.format_message().split())} (hint: see '{command} --help')")  # click may wrap
        return ExitCode.USAGE
    except click.ClickException as exc:
        _report(exc.format_message())
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # the reader went away (gpuctl ... | head); stop quietly
        sys.stderr.close()
        return ExitCode.OK
    except OSError as exc:
        if exc.filename is None:  # not a file-system problem (a socket, a process): a bug
            return _unexpected(exc, debug)
        if debug:
            _print_traceback()
        from gpuctl.errors import FileSystemError

        error = FileSystemError.from_os_error(exc)
        _report(error.one_line())
        return int(error.exit_code)
    except Exception as exc:
        return _unexpected(exc, debug)


def _unexpected(exc: BaseException, debug: bool) -> int:
    if debug:
        _print_traceback()
    _report(f"unexpected {type(exc).__name__}: {exc} "
            f"(hint: rerun with {Env.DEBUG}=1 and report it with the traceback)")
    return ExitCode.UNEXPECTED


def _name_broken_plugins(app: Any) -> None:
    """At the end of a command that used the providers: one warning line naming every broken plugin."""
    if "registry" not in vars(app):  # the command never asked for a provider
        return
    from gpuctl.cli.output import warn
    from gpuctl.providers.guard import PluginError

    failing = sys.exc_info()[1]  # the command's own error, when it fails: not named twice
    line = app.registry.trouble_line(except_for=failing.plugin if isinstance(failing, PluginError) else None)
    if line:
        warn(app, line)


class RootGroup(LazyGroup):
    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        code = run_translated(lambda: super(RootGroup, self).main(
            args, prog_name or "gpuctl", complete_var, standalone_mode=False, **extra))
        if standalone_mode:
            sys.exit(code)
        return code


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("gpuctl", cls=RootGroup, context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@click.option("--json", "json_output", is_flag=True, help="Print JSON on stdout (every listing command).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the essential value; no progress.")
@click.option("-v", "--verbose", count=True, help="Log what gpuctl does on stderr (-vv for debug).")
@click.option("--project-dir", envvar=Env.PROJECT_DIR, show_envvar=True, metavar="DIR",
              help="Project directory (default: nearest one holding gpuctl.yaml or .gpuctl/).")
@click.option("--no-color", is_flag=True, help=f"Plain output without colour (also {Env.NO_COLOR}).")
@click.option("-y", "--yes", is_flag=True, envvar=Env.YES, show_envvar=True, help="Answer yes to confirmations.")
@click.option("--interactive/--no-interactive", default=None,
              help="Allow or forbid prompts (default: prompt only on a TTY).")
@click.version_option(__version__, "--version", prog_name="gpuctl", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, json_output: bool, quiet: bool, verbose: int, project_dir: str | None,
        no_color: bool, yes: bool, interactive: bool | None) -> None:
    """Serve open LLMs on rented GPUs: live prices, one-command deploys, benchmarks, cost accounting.

    \b
    Credentials come from the environment first (RUNPOD_API_KEY, LAMBDA_API_KEY,
    AWS_PROFILE or AWS_ACCESS_KEY_ID, HF_TOKEN), then from 'gpuctl config'.
    Set GPUCTL_DEBUG=1 to see tracebacks. Exit codes: docs/exit-codes.md.
    Alone on a terminal, gpuctl starts a wizard that picks a model, a GPU offer and a TTL.
    """
    from gpuctl.app import App
    from gpuctl.logs import configure_logging

    ctx.obj = App(json=json_output, quiet=quiet, verbose=verbose, no_color=no_color, yes=yes,
                  interactive=interactive, project_dir=project_dir)
    ctx.call_on_close(lambda: _name_broken_plugins(ctx.obj))
    configure_logging(verbose, lambda: ctx.obj.registry.config_keys().values())
    if ctx.invoked_subcommand is None:
        if not ctx.obj.can_prompt:
            click.echo(ctx.get_help())
            return
        from gpuctl.cli.wizard import start_from_root

        start_from_root(ctx)
