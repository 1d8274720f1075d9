"""The wizard on a terminal: ``gpuctl`` alone, ``gpuctl up -i`` and ``gpuctl init -i``.

Questions are questionary prompts drawn on stderr (so ``$(gpuctl up -i --print-command)`` captures
only the command). Esc or Ctrl-C at any question ends the wizard with exit 130, before anything is
written or launched. What the questions offer comes from :mod:`gpuctl.wizard`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from gpuctl.app import App
from gpuctl.cli.output import ConsoleReporter, info, warn
from gpuctl.errors import CredentialsError, Interrupted, UsageError
from gpuctl.providers.capabilities import Capability
from gpuctl.wizard import (
    DEFAULT_TTL,
    SNAPSHOT_MARK,
    TTL_CHOICES,
    WizardAnswers,
    WizardStart,
    engine_choices,
    gpu_choices,
    model_choices,
    offer_label,
    ttl_total,
)

if TYPE_CHECKING:
    from questionary import Question

    from gpuctl.models.offer import Offer
    from gpuctl.models.recipe import EngineName, Recipe
    from gpuctl.plan import PlanRequest

CANCELLED = "wizard cancelled: nothing was written or launched"
#: up's parameters the wizard answers (a value given for one of them skips or narrows its question)
_ANSWERED = {"model", "gpu", "count", "provider", "engine", "ttl", "max_price", "wizard", "print_command"}
#: up's parameters that narrow the offers as given (the PlanRequest fields of the same name)
_CONSTRAINTS = ("count", "region", "spot", "max_price", "max_model_len", "gpu_memory_utilization", "quantization",
                "served_model_name", "public", "hf_config", "image")
#: parameters that are not deployment choices and are not carried into the command line
_NOT_CARRIED = {"yes", "quiet", "json_output", "interactive", "no_color", "verbose", "help"}
#: the TTL answers that are not durations
_NO_TTL, _OTHER_TTL = "none", "other"
#: seconds a lone Esc waits before it counts as Esc (prompt_toolkit's defaults add up to 1.5 s)
ESCAPE_WAIT_S = 0.2


def require_terminal(app: App) -> None:
    """The wizard never prompts without a terminal (or under --json / --no-interactive): exit 2 instead."""
    if not app.can_prompt:
        raise UsageError("the wizard needs a terminal (stdin and stderr), and no --json or --no-interactive",
                         "give MODEL and flags instead (see 'gpuctl up --help')")


class Asker:
    """questionary prompts on stderr, where Esc cancels like Ctrl-C (exit 130).

    ``input`` and ``output`` are prompt_toolkit's (default: the terminal, drawing on stderr).
    """

    def __init__(self, input: Any = None, output: Any = None) -> None:
        self.input, self.output = input, output

    def select(self, message: str, choices: Sequence[tuple[str, Any, str | None]], default: Any = None) -> Any:
        """Pick one of ``choices``: (title, value, why it is disabled or None)."""
        import questionary

        items = [questionary.Choice(title, value=value, disabled=disabled) for title, value, disabled in choices]
        enabled = [item.value for item in items if not item.disabled]
        return self._ask(questionary.select(message, items, default=default if default in enabled else None,
                                            **self._io()))

    def text(self, message: str, validate: Any) -> str:
        import questionary

        return self._ask(questionary.text(message, validate=validate, **self._io()))

    def confirm(self, message: str, default: bool) -> bool:
        import questionary

        return self._ask(questionary.confirm(message, default=default, **self._io()))

    def _io(self) -> dict[str, Any]:
        from prompt_toolkit.output import create_output

        return {"input": self.input, "output": self.output or create_output(stdout=sys.stderr)}

    @staticmethod
    def _ask(question: Question) -> Any:
        from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

        cancel = KeyBindings()

        @cancel.add("escape")
        def _escape(event: Any) -> None:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

        application = question.application
        application.key_bindings = merge_key_bindings([application.key_bindings or KeyBindings(), cancel])
        # a lone Esc is told from the start of an escape sequence by a pause; keep that pause short
        application.ttimeoutlen, application.timeoutlen = ESCAPE_WAIT_S, ESCAPE_WAIT_S
        try:
            answer = question.unsafe_ask()
        except KeyboardInterrupt:
            raise Interrupted(CANCELLED) from None
        if answer is None:  # questionary's own cancel path
            raise Interrupted(CANCELLED)
        return answer


def ask(app: App, start: WizardStart, *, action: str, launches: bool = False,
        asker: Asker | None = None) -> WizardAnswers:
    """Model, then a GPU that fits, one provider's offer, engine and TTL; then a confirmation of ``action``.

    When the answers are to be deployed (``launches``), offers of providers without credentials are
    shown disabled, with how to add them, and the confirmation defaults to no.
    """
    from gpuctl.credentials import resolve_credential
    from gpuctl.recipes import resolve_model

    asker = asker or Asker()
    token = resolve_credential("hf.token").present
    model = start.model or asker.select("Model:", [(c.label(token), c.name, None) for c in model_choices(
        app.project_root)], default=start.defaults.model)
    recipe = resolve_model(model, app.project_root, start.constraints.get("hf_config"))
    request = start.request(recipe.name)
    offers, keyless = _offers(app, request)
    gpus = gpu_choices(recipe, offers, request, can_launch=lambda name: _can_launch(app, name))
    if not gpus:
        raise UsageError(f"offers fit {recipe.name}, but none is at a provider that can deploy",
                         "deploy to a machine you have: gpuctl up MODEL --host user@addr")
    blocked = keyless if launches else {}
    gpu_problems = [_without_credentials([o.provider for o in choice.offers], blocked) for choice in gpus]
    if all(gpu_problems):
        raise CredentialsError(f"no provider with credentials has an offer that fits {recipe.name}",
                               f"{next(iter(blocked.values()))}; or pass --print-command to only print the command")
    marked = any(o.source == "snapshot" for choice in gpus for o in choice.offers)
    legend = f"; {SNAPSHOT_MARK} dated snapshot price" if marked else ""
    gpu = gpus[asker.select(f"GPU for {recipe.name} (cheapest offer per provider{legend}):",
                            [(choice.label(), index, gpu_problems[index]) for index, choice in enumerate(gpus)],
                            default=0)]
    offer = gpu.offers[asker.select("Offer:", [
        (offer_label(o), index, f"no credentials: {blocked[o.provider]}" if o.provider in blocked else None)
        for index, o in enumerate(gpu.offers)], default=0)]
    engine = start.engine or _ask_engine(app, asker, recipe, offer, request, start.defaults.engine)
    ttl = start.ttl if start.ttl is not None else _ask_ttl(asker, offer.price_per_hour, start.defaults.ttl)
    answers = WizardAnswers(model=model, gpu=offer.gpu, gpu_count=offer.gpu_count, provider=offer.provider,
                            engine=engine, ttl=ttl, offer=offer)
    click.echo(answers.summary(), err=True)
    if not asker.confirm(f"{action}?", default=not launches):
        raise Interrupted(CANCELLED)
    return answers


def _without_credentials(providers: list[str], keyless: dict[str, str]) -> str | None:
    """Why none of ``providers`` can launch from here (None when one can)."""
    return f"no credentials for {', '.join(providers)}" if all(name in keyless for name in providers) else None


def _offers(app: App, request: PlanRequest) -> tuple[list[Offer], dict[str, str]]:
    """The offers, and the providers without credentials with how to set them."""
    from gpuctl.pricing import collect_offers

    result = collect_offers(request.offer_query(), providers=request.providers, registry=app.registry,
                            reporter=ConsoleReporter(app))
    for line in result.warnings:
        warn(app, line)
    keyless = {name: outcome.detail or "see 'gpuctl doctor'" for name, outcome in result.sources.items()
               if outcome.status == "no-credentials"}
    if keyless:
        info(app, f"no credentials for {', '.join(keyless)}: their prices are dated snapshots, marked so "
                  "('gpuctl doctor' checks the setup)")
    return result.offers, keyless


def _can_launch(app: App, provider: str) -> bool:
    return app.registry.classes[provider].can(Capability.LAUNCH)


def _ask_engine(app: App, asker: Asker, recipe: Recipe, offer: Offer, request: PlanRequest,
                default: str | None) -> EngineName:
    public = app.registry.classes[offer.provider].can(Capability.ENGINE_CONTAINER)
    choices = engine_choices(recipe, offer, request, public=public)
    if all(choice.problem for choice in choices):
        raise UsageError(f"no engine can serve {recipe.name} on {offer.id}: {choices[0].problem}")
    return asker.select("Engine:", [(c.engine, c.engine, c.problem) for c in choices], default=default or "vllm")


def _ask_ttl(asker: Asker, price: float, default: str | None) -> str | None:
    from gpuctl.durations import parse_ttl

    options = list(dict.fromkeys([*TTL_CHOICES, *([default] if default else [])]))
    choices: list[tuple[str, Any, str | None]] = [
        (f"{ttl:<4} at most ${ttl_total(price, ttl):.2f}", ttl, None) for ttl in options]
    choices += [("no TTL: runs and bills until 'gpuctl down'", _NO_TTL, None), ("other ...", _OTHER_TTL, None)]
    picked = asker.select("Time to live (the deployment ends after it):", choices, default=default or DEFAULT_TTL)
    if picked == _NO_TTL:
        return None
    if picked != _OTHER_TTL:
        return str(picked)

    def valid(text: str) -> bool | str:
        try:
            parse_ttl(text)
        except UsageError as exc:
            return exc.one_line()
        return True

    return asker.text("TTL (e.g. 90m, 3h, 1d):", validate=valid).strip()


# -- entry points -------------------------------------------------------------------------------------

def start_from_root(ctx: click.Context) -> None:
    """``gpuctl`` alone on a terminal: the wizard of ``gpuctl up -i``."""
    command = ctx.command.get_command(ctx, "up")  # type: ignore[attr-defined]
    with command.make_context("up", ["-i"], parent=ctx) as sub:
        command.invoke(sub)


def up_wizard(ctx: click.Context, *, print_command: bool) -> None:
    """``gpuctl up -i``: ask, write gpuctl.yaml, then deploy (or print the equivalent command)."""
    app: App = ctx.obj
    require_terminal(app)
    start = _up_start(app, ctx)
    launches = not (print_command or ctx.params.get("dry_run"))
    if launches and not _any_credentials(app, start.constraints.get("providers")):
        warn(app, "no provider has credentials, so nothing can be deployed from here: the wizard writes gpuctl.yaml "
                  "and prints the command instead ('gpuctl doctor' says how to add credentials)")
        print_command, launches = True, False
    action = "Write gpuctl.yaml and print the command" if print_command else (
        "Write gpuctl.yaml and deploy" if launches else "Write gpuctl.yaml and show the plan")
    answers = ask(app, start, action=action, launches=launches)
    _save_defaults(app, answers)
    extra = _carried(ctx)
    if print_command:
        click.echo(answers.command_line(extra, before=_carried(ctx.parent) if ctx.parent else ()))
        return
    command = ctx.command
    # the confirmation above is the yes; --max-price holds up to the price it showed
    with command.make_context("up", [*answers.to_argv()[1:], *extra, "--yes"], parent=ctx.parent) as sub:
        command.invoke(sub)


def _up_start(app: App, ctx: click.Context) -> WizardStart:
    """What ``up``'s flags already decide; bad values fail here, before any question."""
    from gpuctl.catalog import resolve_gpu
    from gpuctl.durations import parse_ttl

    params = ctx.params
    given = {name for name in params if _given(ctx, name)}
    if "host" in given:
        raise UsageError("the wizard picks a rented GPU; it does not combine with --host", "drop -i, or drop --host")
    constraints: dict[str, Any] = {key: params[key] for key in _CONSTRAINTS if key in given}
    if "region" not in given and app.project.region:
        constraints["region"] = app.project.region  # up applies it too: the offers must be in it
    if "gpu" in given:
        constraints["gpu"] = resolve_gpu(params["gpu"])
    if "provider" in given and params["provider"] != "auto":
        app.registry.create(params["provider"])  # an unknown name fails with close matches
        constraints["providers"] = [params["provider"]]
    if "ttl" in given:
        parse_ttl(params["ttl"])
    return WizardStart(model=params.get("model"), engine=params.get("engine"), ttl=params.get("ttl"),
                       constraints=constraints, defaults=app.project)


def init_wizard(app: App, values: dict[str, Any]) -> WizardAnswers:
    """``gpuctl init -i``: the same questions, with init's flags as answers already given."""
    require_terminal(app)
    constraints: dict[str, Any] = {key: value for key, value in (("gpu", values.get("gpu")),
                                                                  ("region", values.get("region"))) if value}
    if values.get("provider") not in (None, "auto"):
        constraints["providers"] = [values["provider"]]
    start = WizardStart(model=values.get("model"), engine=values.get("engine"), ttl=values.get("ttl"),
                        constraints=constraints)
    return ask(app, start, action="Write gpuctl.yaml")


def _any_credentials(app: App, providers: list[str] | None) -> bool:
    """Whether one of ``providers`` (default: every rentable one) has credentials; reads no network."""
    registry = app.registry
    names = providers or [name for name in registry.names() if not registry.classes[name].can(Capability.USER_HOST)]
    return any(registry.create(name).credentials().present for name in names)


def _save_defaults(app: App, answers: WizardAnswers) -> None:
    from gpuctl.project import write_project_file

    path = write_project_file(app.project_root, answers.project_defaults(app.project))
    info(app, f"wrote {path}")


def _given(ctx: click.Context, name: str) -> bool:
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _carried(ctx: click.Context) -> list[str]:
    """The flags given on ``ctx``'s command line that the wizard does not answer, as arguments again."""
    argv: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        if not isinstance(param, click.Option) or name in _ANSWERED | _NOT_CARRIED or not _given(ctx, name):
            continue
        value = ctx.params[name]
        flag = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
        if param.is_flag and param.secondary_opts:
            argv.append(flag if value else param.secondary_opts[0])
        elif param.is_flag:
            argv += [flag] if value else []
        else:
            argv += [part for one in (value if param.multiple else [value]) for part in (flag, str(one))]
    return argv
