"""The registry hands every provider out guarded: a plugin's bug, hang or garbage costs only that plugin,
named; its declarations are checked once, at discovery."""

from __future__ import annotations

import pickle
import re
import threading
import time
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from gpuctl.config import CORE_KEYS, ConfigKey
from gpuctl.credentials import CredentialStatus
from gpuctl.errors import ExitCode, NotFoundError, UnsupportedError
from gpuctl.models.instance import Instance
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.plugins import ENTRY_POINT_GROUP, BrokenPlugin, ProviderRegistry
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.guard import GuardedProvider, PluginError, PluginHung
from tests.unit.pricing_fakes import offer


class Plain(Provider):
    """Declares LAUNCH; each method does what ``behaviour`` says."""

    name = "plain"
    display_name = "Plain"
    capabilities = frozenset({Capability.LAUNCH, Capability.SSH_MACHINE})
    call_timeout = 0.5
    behaviour: dict[str, Any] = {}
    threads: list[str] = []

    def _act(self, method: str, default: Any) -> Any:
        type(self).threads.append(threading.current_thread().name)
        what = self.behaviour.get(method, default)
        if isinstance(what, BaseException):
            raise what
        if what == "hang":
            time.sleep(30)
        return what

    def credentials(self) -> CredentialStatus:
        return self._act("credentials", CredentialStatus(key="", present=True, source="test"))

    def offers(self, query: OfferQuery) -> list[Offer]:
        return self._act("offers", [offer("plain", "L40S", 1, 1.0)])

    def launch(self, request: Any) -> Instance:
        return self._act("launch", Instance(provider="plain", id="i-1", status="running"))

    def get(self, instance_id: str) -> Instance:
        return self._act("get", Instance(provider="plain", id=instance_id, status="running"))

    def terminate(self, instance_id: str) -> None:
        return self._act("terminate", None)


@pytest.fixture
def plain() -> type[Plain]:
    Plain.behaviour, Plain.threads = {}, []
    return Plain


def make(*classes: type[Provider]) -> ProviderRegistry:
    return ProviderRegistry(classes={c.name: c for c in classes},
                            packages={c.name: ("plain-gpus", "0.3") for c in classes})


def test_a_guarded_provider_is_a_provider_with_the_plugins_declarations(plain) -> None:
    provider = make(plain).create("plain")
    assert isinstance(provider, GuardedProvider) and isinstance(provider, Provider)
    assert (provider.name, provider.display_name, provider.can(Capability.LAUNCH)) == ("plain", "Plain", True)
    assert type(provider).can(Capability.SSH_MACHINE) and not provider.can(Capability.LIST_BY_TAG)
    assert [o.gpu for o in provider.offers(OfferQuery())] == ["L40S"]


@pytest.mark.parametrize("method", ["credentials", "offers", "get", "terminate", "launch"])
def test_an_exception_from_any_method_is_one_plugin_error_naming_plugin_method_and_package(plain, method) -> None:
    plain.behaviour = {method: RuntimeError("boom\nsecond line")}
    registry = make(plain)
    provider = registry.create("plain")
    call = {"credentials": lambda: provider.credentials(), "offers": lambda: provider.offers(OfferQuery()),
            "get": lambda: provider.get("i-1"), "terminate": lambda: provider.terminate("i-1"),
            "launch": lambda: provider.launch(None)}[method]
    with pytest.raises(PluginError) as info:
        call()
    assert info.value.message == f"provider plugin 'plain' failed: {method}() raised RuntimeError: boom second line"
    assert info.value.hint == ("a bug in the plugin package plain-gpus 0.3: report it to its authors, or uninstall it "
                               "(pip uninstall plain-gpus)")
    assert (info.value.plugin, info.value.exit_code) == ("plain", ExitCode.PROVIDER)
    assert registry.failures == {"plain": info.value}


def test_gpuctl_errors_are_the_providers_answer_and_pass_through(plain) -> None:
    plain.behaviour = {"get": NotFoundError("no instance i-9")}
    registry = make(plain)
    with pytest.raises(NotFoundError):
        registry.create("plain").get("i-9")
    assert registry.failures == {}


@pytest.mark.parametrize(("method", "answer", "message"), [
    ("offers", [{"gpu": "H100"}], "returned from offers() an item of type dict, not a list of Offer"),
    ("offers", "L40S", "returned from offers() a value of type str, not a list or a tuple"),
    ("offers", [offer("other", "L40S", 1, 1.0)], "returned from offers() an answer of provider 'other'"),
    ("get", "i-1", "returned from get() a value of type str, not an Instance"),
    ("credentials", True, "returned from credentials() a value of type bool, not a CredentialStatus"),
])
def test_garbage_answers_are_plugin_errors(plain, method, answer, message) -> None:
    plain.behaviour = {method: answer}
    provider = make(plain).create("plain")
    call = {"offers": lambda: provider.offers(OfferQuery()), "get": lambda: provider.get("i-1"),
            "credentials": lambda: provider.credentials()}[method]
    with pytest.raises(PluginError, match=re.escape(f"provider plugin 'plain' {message}")):
        call()


def test_a_hanging_read_is_bounded_by_call_timeout(plain) -> None:
    plain.behaviour = {"get": "hang"}
    registry = make(plain)
    started = time.monotonic()
    with pytest.raises(PluginHung) as info:
        registry.create("plain").get("i-1")
    assert time.monotonic() - started < 5
    assert info.value.exit_code == ExitCode.TIMEOUT
    assert info.value.message == "provider plugin 'plain' did not return from get() within 0.5s"
    assert "plain" in registry.failures


def test_calls_that_create_run_in_the_callers_thread_reads_in_their_own(plain) -> None:
    provider = make(plain).create("plain")
    provider.launch(None)  # type: ignore[arg-type]
    provider.get("i-1")
    assert plain.threads[0] == threading.current_thread().name
    assert plain.threads[1] != threading.current_thread().name


def test_an_undeclared_capability_is_refused_without_calling_the_plugin(plain) -> None:
    class Sneaky(Plain):
        name = "sneaky"

        def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
            raise AssertionError("never called")

    with pytest.raises(UnsupportedError, match="does not declare the list-by-tag capability"):
        make(Sneaky).create("sneaky").list_by_tag({})


def test_a_constructor_that_raises_is_a_plugin_error(plain) -> None:
    class Fragile(Plain):
        name = "fragile"

        def __init__(self) -> None:
            raise OSError("no config")

    registry = make(Fragile)
    with pytest.raises(PluginError, match="provider plugin 'fragile' failed: constructing it raised OSError"):
        registry.create("fragile")
    assert "fragile" in registry.failures


def test_create_lowers_the_request_timeout_never_raises_it(plain) -> None:
    registry = make(plain)
    assert registry.create("plain", timeout=2.5).timeout == 2.5
    assert registry.create("plain", timeout=99).timeout == Provider.timeout


def test_plugin_errors_survive_a_process_boundary() -> None:
    error = pickle.loads(pickle.dumps(PluginHung("x", "did not return", "report it")))
    assert (type(error), error.message, error.hint, error.plugin) == (PluginHung, "provider plugin 'x' did not return",
                                                                      "report it", "x")


def test_one_line_names_every_broken_plugin(plain) -> None:
    plain.behaviour = {"offers": KeyError("price")}
    registry = make(plain)
    registry.broken.append(BrokenPlugin("ghost", "ghost-gpus", "ImportError: gone"))
    with pytest.raises(PluginError):
        registry.create("plain").offers(OfferQuery())
    line = registry.trouble_line()
    assert line is not None and "\n" not in line
    assert line == ("2 provider plugins broken, skipped: ghost failed to load: ImportError: gone; plain failed: "
                    "offers() raised KeyError: 'price' (hint: reinstall or upgrade ghost-gpus; a bug in the plugin "
                    "package plain-gpus 0.3: report it to its authors, or uninstall it (pip uninstall plain-gpus))")
    assert registry.trouble_line(except_for="plain").startswith("provider plugin 'ghost' failed to load")


# -- declarations, checked at discovery ----------------------------------------------------------------

class Good(Provider):
    name = "good"
    display_name = "Good"

    def offers(self, query: OfferQuery) -> list[Offer]:
        return []


def declared(**attrs: Any) -> type[Provider]:
    return type("Declared", (Good,), {"name": "good", **attrs})


@pytest.mark.parametrize(("cls", "problem"), [
    (declared(name="Bad Name"), "'name' must be a short lowercase string"),
    (declared(name="other"), "its class is named 'other' but its entry point 'good'"),
    (declared(display_name=property(lambda self: 1 / 0)), "'display_name' must be a non-empty string"),
    (declared(capabilities={"launch"}), "capabilities must be a frozenset of"),
    (declared(capabilities=frozenset({Capability.LAUNCH})), "can launch but declares no machine kind"),
    (declared(config_keys=("good.key",)), "'config_keys' must be a tuple of gpuctl.config.ConfigKey"),
    (declared(config_keys=(ConfigKey("good.k", "a"), ConfigKey("good.k", "b"))), "declares config key 'good.k' twice"),
    (declared(config_keys=(ConfigKey("hf.token", "mine"),)), "config key 'hf.token' is already declared differently"),
    (declared(call_timeout=0), "'call_timeout' must be a positive number of seconds"),
    (declared(own_process="yes"), "'own_process' must be True or False"),
    (type("Abstract", (Provider,), {"name": "good", "display_name": "G"}), "does not implement offers"),
    (int, "is not a gpuctl Provider subclass"),
])
def test_unsound_declarations_make_the_plugin_broken_at_discovery(cls: type, problem: str) -> None:
    registry = ProviderRegistry(classes={"good": cls})  # type: ignore[dict-item]
    assert registry.names() == []
    [broken] = registry.broken
    assert broken.name == "good" and problem in broken.error


def test_a_shared_key_declared_identically_is_fine() -> None:
    shared = ConfigKey("shared.cidr", "ranges")
    one = type("One", (Good,), {"name": "one", "config_keys": (shared,)})
    two = type("Two", (Good,), {"name": "two", "config_keys": (shared,)})
    registry = ProviderRegistry(classes={"one": one, "two": two})
    assert registry.names() == ["one", "two"]
    assert list(registry.config_keys()) == [*(k.name for k in CORE_KEYS), "shared.cidr"]


def test_discovery_names_an_entry_point_that_fails_to_import() -> None:
    registry = ProviderRegistry.discover([EntryPoint("ghost", "no_such_module_xyz:P", ENTRY_POINT_GROUP)])
    [broken] = registry.broken
    assert broken.error.startswith("ModuleNotFoundError")
    assert registry.trouble_line().startswith("provider plugin 'ghost' failed to load: ModuleNotFoundError")
