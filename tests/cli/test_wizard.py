"""The wizard: its choices and answers (offline, snapshot prices), its prompts, and how commands start it.

The questions are answered by a scripted :class:`Asker`; ``tests/integration/test_wizard_tmux.py``
drives the real prompts in a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuctl.app import App
from gpuctl.cli.wizard import CANCELLED, Asker, ask
from gpuctl.errors import CredentialsError, ExitCode, Interrupted, NoCapacityError
from gpuctl.models.offer import OfferQuery
from gpuctl.plan import PlanRequest
from gpuctl.pricing import collect_offers
from gpuctl.project import ProjectFile
from gpuctl.recipes import resolve_model
from gpuctl.wizard import WizardAnswers, WizardStart, engine_choices, gpu_choices, price_ceiling
from tests.fakehost.cloud import make_offer, write_recipe
from tests.standins.fixtures import runpod_api  # noqa: F401 (fixture)
from tests.standins.mock_openai import MockProcess
from tests.unit.pricing_fakes import offer

KEYS = {"Model": "model", "GPU": "gpu", "Offer": "offer", "Engine": "engine", "Time to live": "ttl", "TTL": "text"}


@dataclass
class Asked:
    message: str
    titles: list[str]
    disabled: dict[str, str]
    default: Any


def titled(part: str) -> Callable[[list[tuple[str, Any, str | None]]], Any]:
    """Pick the first enabled choice whose title contains ``part``."""
    def pick(choices: list[tuple[str, Any, str | None]]) -> Any:
        return next(value for title, value, disabled in choices if part in title and not disabled)
    return pick


class Script(Asker):
    """Answers each question from ``answers`` (keyed as in KEYS; default: the pre-selected choice)."""

    def __init__(self, **answers: Any) -> None:
        super().__init__()
        self.answers = answers
        self.asked: dict[str, Asked] = {}

    def select(self, message: str, choices: Any, default: Any = None) -> Any:
        key = next(key for prefix, key in KEYS.items() if message.startswith(prefix))
        self.asked[key] = Asked(message, [c[0] for c in choices], {c[0]: c[2] for c in choices if c[2]}, default)
        pick = self.answers.get(key, default)
        return pick(choices) if callable(pick) else pick

    def text(self, message: str, validate: Any) -> str:
        self.asked["text"] = Asked(message, [], {}, None)
        assert validate("soon") is not True, "the TTL is validated"
        return self.answers["text"]

    def confirm(self, message: str, default: bool) -> bool:
        self.asked["confirm"] = Asked(message, [], {}, default)
        return self.answers.get("confirm", True)


def run(asker: Script, start: WizardStart | None = None, action: str = "Write gpuctl.yaml",
        launches: bool = False) -> WizardAnswers:
    return ask(App(), start or WizardStart(), action=action, launches=launches, asker=asker)


# -- choices and answers ------------------------------------------------------------------------------

def test_offline_wizard_offers_snapshot_prices_marked_and_answers_up_flags() -> None:
    script = Script(model="llama-3-8b", gpu=titled("1 x L40S"), offer=titled("aws"))
    answers = run(script)
    assert answers.to_argv() == ["up", "llama-3-8b", "--gpu", "L40S", "--count", "1", "--provider", "aws",
                                 "--engine", "vllm", "--ttl", "2h", "--max-price", "1.861"]
    model = script.asked["model"]
    assert "llama-3-8b                8B    8192 ctx  gated, needs HF_TOKEN" in model.titles
    assert "qwen2.5-7b-awq      7.6B awq    8192 ctx  open" in model.titles
    gpu = script.asked["gpu"]
    assert gpu.message == "GPU for llama-3-8b (cheapest offer per provider; * dated snapshot price):"
    assert gpu.titles[0] == "1 x L40S         48 GB  from   $0.79/h   23 seqs of 8192  (runpod $0.79*, aws $1.86*)"
    offers = script.asked["offer"].titles
    assert len(offers) == 2, "one offer per provider: RunPod's secure L40S ($1.09) is not the cheapest"
    assert offers[0].startswith("runpod  NVIDIA L40S") and "$0.79/h" in offers[0]
    assert offers[1].endswith("unknown stock, snapshot price of 2026-11-09")
    ttl = script.asked["ttl"]
    assert ttl.default == "2h"
    assert "2h   at most $3.72" in ttl.titles and "no TTL: runs and bills until 'gpuctl down'" in ttl.titles
    assert script.asked["confirm"].message == "Write gpuctl.yaml?"
    assert answers.summary() == ("llama-3-8b with vllm on aws 1 x L40S (g6e.xlarge, us-east-1) at $1.86/h "
                                 "(snapshot price); TTL 2h, at most $3.72 in total")


def test_every_offer_shown_is_the_one_up_launches_for_its_flags(gpuctl) -> None:
    recipe = resolve_model("llama-3-8b")
    request = PlanRequest(model="llama-3-8b")
    choices = gpu_choices(recipe, collect_offers(OfferQuery()).offers, request)
    assert [c.gpu for c in choices][:3] == ["L40S", "L4", "A10G"]
    assert [o.price_per_hour for c in choices for o in c.offers[:1]] == sorted(
        o.price_per_hour for c in choices for o in c.offers[:1]), "cheapest GPU first"
    for choice in choices:
        for shown in choice.offers:
            answers = WizardAnswers(model="llama-3-8b", gpu=shown.gpu, gpu_count=shown.gpu_count,
                                    provider=shown.provider, engine="vllm", ttl="1h", offer=shown)
            result = gpuctl(*answers.to_argv(), "--dry-run", "--json")
            assert result.exit_code == 0, result.stderr
            assert json.loads(result.stdout)["offer"]["id"] == shown.id


def test_flags_answer_their_questions_ahead() -> None:
    script = Script()
    start = WizardStart(model="qwen2.5-7b", engine="tgi", ttl="90m", constraints={"gpu": "H100-SXM"})
    answers = run(script, start)
    assert set(script.asked) == {"gpu", "offer", "confirm"}
    assert {title.split()[2] for title in script.asked["gpu"].titles} == {"H100-SXM"}
    assert (answers.model, answers.engine, answers.ttl, answers.gpu) == ("qwen2.5-7b", "tgi", "90m", "H100-SXM")
    assert answers.to_argv()[-4:] == ["--ttl", "90m", "--max-price", "2.69"]


def test_project_defaults_are_preselected() -> None:
    script = Script(gpu=titled("x"), offer=titled(" "))
    defaults = ProjectFile(model="qwen2.5-7b", engine="tgi", ttl="3h")
    answers = run(script, WizardStart(defaults=defaults))
    assert script.asked["model"].default == "qwen2.5-7b"
    assert script.asked["engine"].default == "tgi"
    assert script.asked["ttl"].default == "3h" and script.asked["ttl"].titles[5].startswith("3h ")
    assert (answers.model, answers.engine, answers.ttl) == ("qwen2.5-7b", "tgi", "3h")
    assert answers.project_defaults(ProjectFile(name="demo", region="us-east-1")) == ProjectFile(
        name="demo", region="us-east-1", model="qwen2.5-7b", gpu=answers.gpu, provider=answers.provider,
        engine="tgi", ttl="3h")


def test_an_engine_that_cannot_serve_the_offer_is_shown_disabled_with_why() -> None:
    script = Script(model="qwen2.5-7b")
    run(script, WizardStart(constraints={"served_model_name": "chat"}))
    assert script.asked["engine"].disabled == {"tgi": "tgi cannot rename the served model; it answers as "
                                                      "Qwen/Qwen2.5-7B-Instruct"}


def test_engine_choices_reject_what_the_recipe_does_not_support() -> None:
    from gpuctl.models.recipe import EngineDefaults

    recipe = resolve_model("phi-3-mini")
    recipe = recipe.model_copy(update={"engines": {"vllm": EngineDefaults(), "tgi": EngineDefaults(supported=False)}})
    choices = engine_choices(recipe, offer("runpod", "L40S", 1, 0.79), PlanRequest(model="phi-3-mini"),
                             public=True)
    assert [(c.engine, c.problem) for c in choices] == [("vllm", None), ("sglang", None),
                                                        ("tgi", "phi-3-mini cannot be served with tgi")]


def test_no_ttl_and_a_typed_ttl() -> None:
    answers = run(Script(model="phi-3-mini", ttl="none"))
    assert answers.ttl is None and "--ttl" not in answers.to_argv()
    assert answers.summary().endswith("; no TTL: bills until 'gpuctl down'")
    assert answers.total_usd is None
    script = Script(model="phi-3-mini", ttl="other", text="3h")
    assert run(script).ttl == "3h"
    assert script.asked["text"].message == "TTL (e.g. 90m, 3h, 1d):"


def test_declining_launches_nothing_and_is_exit_130(runpod_api) -> None:  # noqa: F811
    script = Script(model="phi-3-mini", confirm=False)
    with pytest.raises(Interrupted) as caught:
        run(script, action="Write gpuctl.yaml and deploy", launches=True)
    assert script.asked["confirm"].default is False, "a launch is never the default"
    assert caught.value.exit_code == ExitCode.INTERRUPTED == 130
    assert caught.value.message == CANCELLED


def test_deploying_without_any_credentials_is_exit_6() -> None:
    with pytest.raises(CredentialsError) as caught:
        run(Script(model="phi-3-mini"), launches=True)
    assert caught.value.exit_code == 6
    assert caught.value.message == "no provider with credentials has an offer that fits phi-3-mini"
    assert caught.value.hint.endswith("; or pass --print-command to only print the command")


def test_deploying_disables_offers_of_providers_without_credentials(runpod_api) -> None:  # noqa: F811
    script = Script(model="phi-3-mini")
    answers = run(script, launches=True)
    assert answers.provider == "runpod" and answers.offer.source == "live"
    gpus = script.asked["gpu"]
    assert gpus.disabled, "GPUs only lambda or aws offer cannot be deployed"
    assert set(gpus.disabled.values()) <= {"no credentials for aws", "no credentials for lambda",
                                           "no credentials for lambda, aws", "no credentials for aws, lambda"}
    assert all("runpod $" not in title for title in gpus.disabled)
    offers = script.asked["offer"]
    assert all(title.startswith(("aws ", "lambda ")) for title in offers.disabled)
    assert all(why.startswith("no credentials: export ") for why in offers.disabled.values())
    assert script.asked["confirm"].default is False


def test_nothing_fits_is_no_capacity() -> None:
    with pytest.raises(NoCapacityError, match=r"can serve llama-3\.1-70b"):
        run(Script(model="llama-3.1-70b"), WizardStart(constraints={"gpu": "T4"}))


@pytest.mark.parametrize(("price", "flag"), [(0.79, "0.79"), (21.957642, "21.9577"), (2.0, "2"), (0.1 + 0.2, "0.3001")])
def test_max_price_never_undercuts_the_confirmed_price(price: float, flag: str) -> None:
    assert price_ceiling(price) == flag
    assert float(flag) >= price


# -- the prompts themselves ------------------------------------------------------------------------------

def test_prompts_read_keys_and_cancel_on_escape_and_ctrl_c() -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    choices = [("a", 1, None), ("b", 2, "not today"), ("c", 3, None)]
    with create_pipe_input() as keys:
        asker = Asker(input=keys, output=DummyOutput())
        keys.send_text("\x1b[B\r")  # Down skips the disabled choice
        assert asker.select("pick", choices, default=1) == 3
        keys.send_text("n")
        assert asker.confirm("sure?", default=True) is False
        for key in ("\x03", "\x1b"):  # Ctrl-C, Esc
            keys.send_text(key)
            with pytest.raises(Interrupted, match=CANCELLED):
                asker.select("pick", choices)


# -- how commands start it --------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["up", "-i"], ["up", "--print-command"], ["init", "-i"], ["--json", "up", "-i"]])
def test_no_terminal_no_prompt_exit_2(gpuctl, isolated: Path, args: list[str]) -> None:
    result = gpuctl(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the wizard needs a terminal (stdin and stderr)")
    assert not (isolated / "gpuctl.yaml").exists()


@dataclass
class Wizards:
    """What each wizard a command started was given."""

    starts: list[WizardStart]
    actions: list[tuple[str, bool]]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Wizards:
    """Commands believe they run on a terminal; the wizard answers with its defaults (L40S at RunPod, 2h)."""
    import gpuctl.cli.wizard as wizard

    monkeypatch.setattr(App, "can_prompt", property(lambda self: not self.json and self.interactive is not False))
    seen = Wizards([], [])

    def answer(app: App, start: WizardStart, *, action: str, launches: bool = False,
               asker: Asker | None = None) -> WizardAnswers:
        seen.starts.append(start)
        seen.actions.append((action, launches))
        return run(Script(model=start.model or "llama-3-8b"), start, action, launches)

    monkeypatch.setattr(wizard, "ask", answer)
    return seen


def test_print_command_writes_the_project_and_carries_other_flags(gpuctl, terminal, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("name: demo\nregion: any\n")
    result = gpuctl("--project-dir", str(isolated), "up", "-i", "--print-command", "--public", "--name", "demo-1",
                    "--region", "any")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (f"gpuctl --project-dir {isolated} up llama-3-8b --gpu L40S --count 1 --provider runpod "
                             "--engine vllm --ttl 2h --max-price 0.79 --region any --name demo-1 --public\n")
    assert yaml.safe_load((isolated / "gpuctl.yaml").read_text()) == {
        "name": "demo", "region": "any", "model": "llama-3-8b", "gpu": "L40S", "provider": "runpod",
        "engine": "vllm", "ttl": "2h"}
    assert terminal.starts[0].constraints == {"region": "any", "public": True}
    assert terminal.actions == [("Write gpuctl.yaml and print the command", False)]


def test_up_wizard_then_runs_up_with_its_answers(gpuctl, terminal, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("region: us-east-1\n")
    result = gpuctl("up", "-i", "--dry-run", "--count", "1")
    assert result.exit_code == 0, result.stderr
    assert terminal.starts[0].constraints == {"count": 1, "region": "us-east-1"}, "up applies the project's region"
    assert terminal.actions == [("Write gpuctl.yaml and show the plan", False)]
    assert "  offer    runpod NVIDIA L40S: 1 x L40S (any, community) $0.79/h" in result.stdout
    assert "  ttl      2h, about $1.58" in result.stdout


def test_without_any_credentials_the_up_wizard_prints_the_command(gpuctl, terminal, isolated: Path) -> None:
    result = gpuctl("up", "-i")
    assert result.exit_code == 0, result.stderr
    assert terminal.actions == [("Write gpuctl.yaml and print the command", False)]
    assert result.stderr.startswith("warning: no provider has credentials, so nothing can be deployed from here")
    assert result.stdout.startswith("gpuctl up llama-3-8b --gpu L40S --count 1 --provider runpod ")
    assert (isolated / "gpuctl.yaml").exists()


def test_up_wizard_refuses_host(gpuctl, terminal) -> None:
    result = gpuctl("up", "-i", "--host", "local")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the wizard picks a rented GPU; it does not combine with --host")
    assert terminal.starts == []


def test_init_wizard_writes_the_file_and_prints_the_up_command(gpuctl, terminal, isolated: Path) -> None:
    result = gpuctl("init", "-i", "--model", "qwen2.5-7b", "--name", "lab")
    assert result.exit_code == 0, result.stderr
    assert terminal.starts[0].model == "qwen2.5-7b"
    assert terminal.actions == [("Write gpuctl.yaml", False)]
    project = yaml.safe_load((isolated / "gpuctl.yaml").read_text())
    assert project == {"name": "lab", "model": "qwen2.5-7b", "gpu": "L40S", "provider": "runpod",
                       "engine": "vllm", "ttl": "2h"}
    assert result.stdout == ("gpuctl up qwen2.5-7b --gpu L40S --count 1 --provider runpod --engine vllm --ttl 2h "
                             "--max-price 0.79\n")


def test_bare_gpuctl_on_a_terminal_is_the_up_wizard(gpuctl, terminal, monkeypatch, isolated: Path) -> None:
    import gpuctl.cli.wizard as wizard

    def cancel(*args: Any, **kwargs: Any) -> WizardAnswers:
        raise Interrupted(CANCELLED)

    monkeypatch.setattr(wizard, "ask", cancel)
    result = gpuctl()
    assert result.exit_code == 130
    assert result.stderr.endswith(f"error: {CANCELLED}\n")
    assert not (isolated / "gpuctl.yaml").exists()
    assert gpuctl("--no-interactive").stdout.startswith("Usage: gpuctl")


# -- deploying from the wizard, on the in-test fake pod provider --------------------------------------------

@pytest.fixture
def pods(fake_cloud: Any, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, MockProcess]]:
    """One L40S offer at $0.50/h whose pods answer with mock_openai; commands believe they run on a terminal."""
    monkeypatch.setattr(App, "can_prompt", property(lambda self: not self.json))
    write_recipe(isolated)
    fake_cloud.add_offer(make_offer("fakepod", "pod.l40s", 0.5))
    with MockProcess("--model", "tiny-served") as engine:
        fake_cloud.set(endpoint_url=engine.url)
        yield fake_cloud, engine


def test_the_wizard_deploys_what_was_confirmed(gpuctl, pods, monkeypatch, isolated: Path) -> None:
    import gpuctl.cli.wizard as wizard

    cloud, engine = pods
    script = Script(model="tiny")
    monkeypatch.setattr(wizard, "Asker", lambda: script)
    result = gpuctl("-q", "up", "-i", "--name", "w1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{engine.url}/v1\n"
    assert script.asked["confirm"].message == "Write gpuctl.yaml and deploy?"
    assert [launch["offer"] for launch in cloud.world["launches"]] == ["fakepod:pod.l40s:fake-east-1"]
    assert yaml.safe_load((isolated / "gpuctl.yaml").read_text())["provider"] == "fakepod"


def test_a_price_rise_after_the_confirmation_launches_nothing(gpuctl, pods, monkeypatch) -> None:
    import gpuctl.cli.wizard as wizard

    cloud, _ = pods

    class Raising(Script):
        def confirm(self, message: str, default: bool) -> bool:
            cloud.set(offers=[make_offer("fakepod", "pod.l40s", 0.9).model_dump(mode="json")])
            return super().confirm(message, default)

    monkeypatch.setattr(wizard, "Asker", lambda: Raising(model="tiny"))
    result = gpuctl("up", "-i", "--name", "w2")
    assert result.exit_code == 5
    assert "the cheapest offer that fits costs $0.90/h, above --max-price $0.50/h" in result.stderr
    assert cloud.world["launches"] == []
