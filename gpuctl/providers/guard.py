"""Every provider is handed out wrapped, so that whatever it does wrong costs only that provider.

``ProviderRegistry.create`` returns a :class:`GuardedProvider`: a ``Provider`` that forwards each call
to the plugin's own instance and

- lets gpuctl's own errors (``GpuctlError``: a refused key, an unknown instance, no capacity, ...)
  through unchanged: they are the provider's answer;
- turns anything else it raises (a bug) into :class:`PluginError` (exit 4), naming the plugin, the
  method and its package;
- checks what it returns (``offers`` must be ``Offer`` objects of this provider, ``get`` an
  ``Instance``, ...): garbage is a ``PluginError`` too;
- bounds every call that only reads or deletes by the provider's ``call_timeout`` (a hang becomes
  :class:`PluginHung`, exit 7); the calls that create things (``launch``, ``ensure_weights_cache``,
  ``seed_weights``) run in the caller's thread, so that Ctrl-C stops them where they are rather than
  leaving them running unseen;
- refuses a method whose capability the provider did not declare (``UnsupportedError``).

Each failure is also recorded (``on_failure``), so that a command names every broken plugin once.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from gpuctl.credentials import CredentialStatus
from gpuctl.errors import ExitCode, GpuctlError, ProviderError, UnsupportedError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider, ProviderCheck
from gpuctl.providers.capabilities import METHODS

if TYPE_CHECKING:
    from datetime import datetime

    from gpuctl.events import Reporter
    from gpuctl.models.billing import BilledAmount
    from gpuctl.models.instance import Instance, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.catalog import ProviderCatalog
    from gpuctl.weights.mirror import WeightsMirror
    from gpuctl.weights.models import CacheReport, SeedRequest

_CAPABILITY_OF = {method: capability for capability, methods in METHODS.items() for method in methods}


class PluginError(ProviderError):
    """A provider plugin failed in a way no provider should: it raised something other than a gpuctl error,
    returned something it must not, or hung. ``problem`` says what, after the plugin's name."""

    def __init__(self, plugin: str, problem: str, hint: str | None = None) -> None:
        super().__init__(f"provider plugin '{plugin}' {problem}", hint)
        self.plugin = plugin
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:  # crosses a process boundary (the price listing's forked child)
        return (type(self), (self.plugin, self.problem, self.hint))


class PluginHung(PluginError):
    """A provider plugin did not answer within its ``call_timeout``."""

    exit_code = ExitCode.TIMEOUT


def blame_hint(package: str | None, version: str | None) -> str:
    """Who to tell: gpuctl's own providers are gpuctl's bugs; a plugin's are its authors'."""
    if package in (None, "gpuctl"):
        return "a bug in gpuctl: rerun with GPUCTL_DEBUG=1 and report it"
    return (f"a bug in the plugin package {package}{f' {version}' if version else ''}: report it to its authors, "
            f"or uninstall it (pip uninstall {package})")


class GuardedProvider(Provider):
    """The face every caller sees of one installed provider; see the module docstring.

    Subclassed once per plugin class (``guarded_class``) so that the declarations callers read
    (``name``, ``capabilities``, ...) are class attributes, as on the plugin itself.
    """

    plugin_class: ClassVar[type[Provider]]
    package: ClassVar[tuple[str | None, str | None]] = (None, None)
    #: told of every failure (the registry, which names broken plugins once per command)
    on_failure: ClassVar[Callable[[PluginError], None]]

    def __init__(self, inner: Provider) -> None:
        self._inner = inner
        self.timeout = inner.timeout

    @classmethod
    def catalog(cls) -> ProviderCatalog | None:
        from gpuctl.providers.catalog import ProviderCatalog

        found = cls._run("catalog", cls.plugin_class.catalog, (), {}, bounded=False)
        if found is not None and not isinstance(found, ProviderCatalog):
            raise cls._failed(cls._garbage("catalog", found, "a ProviderCatalog or None"))
        return found

    # -- the contract, each call guarded ----------------------------------------------------------------
    def credentials(self) -> CredentialStatus:
        return self._call("credentials", CredentialStatus)

    def doctor_checks(self) -> list[ProviderCheck]:
        return self._call_list("doctor_checks", ProviderCheck)

    def offers(self, query: OfferQuery) -> list[Offer]:
        return self._call_list("offers", Offer, query, own=True)

    def launch(self, request: LaunchRequest) -> Instance:
        from gpuctl.models.instance import Instance

        return self._call("launch", Instance, request, bounded=False, own=True)

    def get(self, instance_id: str) -> Instance:
        from gpuctl.models.instance import Instance

        return self._call("get", Instance, instance_id, own=True)

    def terminate(self, instance_id: str) -> None:
        self._call("terminate", None, instance_id)

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        from gpuctl.models.instance import Instance

        return self._call_list("list_by_tag", Instance, tags, own=True)

    def engine_logs(self, instance_id: str, tail: int | None = None) -> str:
        return self._call("engine_logs", str, instance_id, tail)

    def launch_nodes(self, request: LaunchRequest, nodes: int) -> list[Instance]:
        from gpuctl.models.instance import Instance

        found = self._call("launch_nodes", (list, tuple), request, nodes, bounded=False)
        wrong = next((entry for entry in found if not isinstance(entry, Instance)), None)
        if wrong is not None:
            raise self._failed(self._garbage("launch_nodes", wrong, "a list of Instance", item=True))
        self._check_own("launch_nodes", list(found))
        return list(found)

    def release_nodes(self, tags: dict[str, str]) -> None:
        self._call("release_nodes", None, tags)

    def weights_caches(self) -> list[WeightsCache]:
        from gpuctl.models.weights_cache import WeightsCache

        return self._call_list("weights_caches", WeightsCache)

    def weights_cache_region(self, offer: Offer) -> str | None:
        return self._call("weights_cache_region", (str, type(None)), offer)

    def ensure_weights_cache(self, region: str, *, min_gb: int, tags: dict[str, str]) -> WeightsCache:
        from gpuctl.models.weights_cache import WeightsCache

        return self._call("ensure_weights_cache", WeightsCache, region, bounded=False, min_gb=min_gb, tags=tags)

    def delete_weights_cache(self, cache: WeightsCache) -> None:
        self._call("delete_weights_cache", None, cache)

    def weights_mirror(self, cache: WeightsCache) -> WeightsMirror | None:
        return self._call("weights_mirror", None, cache)  # type: ignore[no-any-return]

    def seed_weights(self, cache: WeightsCache, request: SeedRequest, reporter: Reporter) -> CacheReport:
        from gpuctl.weights.models import CacheReport

        return self._call("seed_weights", CacheReport, cache, request, reporter, bounded=False)

    def billed(self, instance_ids: list[str], start: datetime, end: datetime) -> list[BilledAmount]:
        from gpuctl.models.billing import BilledAmount

        return self._call_list("billed", BilledAmount, instance_ids, start, end)

    # -- how ---------------------------------------------------------------------------------------------
    def _call(self, method: str, returns: type | tuple[type, ...] | None, *args: Any, bounded: bool = True,
              own: bool = False, **kwargs: Any) -> Any:
        """``method`` of the plugin, guarded; ``returns`` is what its answer must be (None: anything),
        ``own`` that an answer with a ``provider`` field must name this provider."""
        capability = _CAPABILITY_OF.get(method)
        if capability is not None and not self.can(capability):
            raise UnsupportedError(f"{self.display_name} does not declare the {capability.value} capability, "
                                   f"so gpuctl does not ask it to {method.replace('_', ' ')}")
        answer = self._run(method, getattr(self._inner, method), args, kwargs, bounded=bounded)
        if returns is not None and not isinstance(answer, returns):
            raise self._failed(self._garbage(method, answer, _names(returns)))
        if own:
            self._check_own(method, [answer])
        return answer

    def _call_list(self, method: str, item: type, *args: Any, own: bool = False) -> list[Any]:
        answer = self._call(method, (list, tuple), *args)
        wrong = next((entry for entry in answer if not isinstance(entry, item)), None)
        if wrong is not None:
            raise self._failed(self._garbage(method, wrong, f"a list of {item.__name__}", item=True))
        if own:
            self._check_own(method, answer)
        return list(answer)

    def _check_own(self, method: str, answers: list[Any]) -> None:
        stranger = next((a for a in answers if getattr(a, "provider", self.name) != self.name), None)
        if stranger is not None:
            raise self._failed(PluginError(
                self.name, f"returned from {method}() an answer of provider '{stranger.provider}'",
                blame_hint(*self.package)))

    @classmethod
    def _failed(cls, error: PluginError) -> PluginError:
        cls.on_failure(error)
        return error

    @classmethod
    def _garbage(cls, method: str, answer: Any, wanted: str, *, item: bool = False) -> PluginError:
        what = "an item" if item else "a value"
        return PluginError(cls.name, f"returned from {method}() {what} of type {type(answer).__name__}, not {wanted}",
                           blame_hint(*cls.package))

    @classmethod
    def _run(cls, method: str, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
             bounded: bool) -> Any:
        """``call(*args, **kwargs)``: in the caller's thread, or (``bounded``) in a daemon thread given
        ``call_timeout`` seconds; its bugs and hangs become PluginError."""
        from gpuctl.concurrency import run_all

        try:
            if not bounded:
                return call(*args, **kwargs)
            context = contextvars.copy_context()
            outcome = run_all({method: lambda: context.run(call, *args, **kwargs)}, timeout=cls.call_timeout)[method]
        except GpuctlError:
            raise
        except Exception as exc:  # a plugin's bug must not take the command down: it becomes one named error
            raise cls._failed(cls._bug(method, exc)) from exc
        if not outcome.finished:
            raise cls._failed(PluginHung(cls.name, f"did not return from {method}() within {cls.call_timeout:g}s",
                                         blame_hint(*cls.package)))
        if outcome.error is None:
            return outcome.value
        if isinstance(outcome.error, GpuctlError):
            raise outcome.error
        if not isinstance(outcome.error, Exception):
            raise outcome.error  # KeyboardInterrupt, SystemExit: not the plugin's to swallow
        raise cls._failed(cls._bug(method, outcome.error)) from outcome.error

    @classmethod
    def _bug(cls, method: str, exc: BaseException) -> PluginError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return PluginError(cls.name, f"failed: {method}() raised {' '.join(detail.split())}", blame_hint(*cls.package))


def _names(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join("None" if kind is type(None) else _a(kind.__name__) for kind in kinds)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'AEIOUaeiou' else 'a'} {noun}"


def guarded_class(plugin: type[Provider], package: tuple[str | None, str | None],
                  on_failure: Callable[[PluginError], None]) -> type[GuardedProvider]:
    """The guarded face of ``plugin`` (whose declarations were validated at discovery); ``on_failure`` is told
    of each of its failures."""
    declared: dict[str, Any] = {
        "name": plugin.name, "display_name": plugin.display_name, "capabilities": frozenset(plugin.capabilities),
        "config_keys": tuple(plugin.config_keys), "catalog_file": plugin.catalog_file,
        "call_timeout": float(plugin.call_timeout), "own_process": bool(plugin.own_process),
        "plugin_class": plugin, "package": package, "on_failure": staticmethod(on_failure), "__module__": __name__,
        "__doc__": f"{plugin.__qualname__} behind gpuctl's guard.",
    }
    return type(f"Guarded{plugin.__name__}", (GuardedProvider,), declared)
