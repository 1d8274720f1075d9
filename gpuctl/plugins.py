"""Discovery of provider plugins through the ``gpuctl.providers`` entry-point group, and the registry
that hands them out guarded (:mod:`gpuctl.providers.guard`).

A plugin that fails to import, or whose class declares something unsound (no name, a name other than
its entry point's, contradictory capabilities, config keys that clash), is *broken*: it is recorded
with the reason and never handed out. A plugin that misbehaves later (raises, hangs, returns garbage)
is recorded as it happens. ``trouble_line`` names them all, once, for the command to print.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from gpuctl.config import CORE_KEYS, ConfigKey
from gpuctl.errors import UsageError
from gpuctl.providers.base import Provider, ProviderInfo
from gpuctl.providers.capabilities import declaration_problems
from gpuctl.providers.guard import GuardedProvider, PluginError, blame_hint, guarded_class

ENTRY_POINT_GROUP = "gpuctl.providers"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass
class BrokenPlugin:
    """A plugin that could not be admitted: it failed to import, or declares something unsound."""

    name: str
    package: str | None
    error: str
    version: str | None = None


@dataclass
class ProviderRegistry:
    """The installed providers. One broken plugin is recorded by name and never breaks the rest."""

    classes: dict[str, type[Provider]] = field(default_factory=dict)
    packages: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    #: plugins that failed while in use: name -> the first failure
    failures: dict[str, PluginError] = field(default_factory=dict)
    _guarded: dict[str, type[GuardedProvider]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        admitted, self.classes = self.classes, {}
        for name, provider_cls in admitted.items():
            self._admit(name, provider_cls, self.packages.get(name, (None, None)))

    @classmethod
    def discover(cls, eps: list[EntryPoint] | None = None) -> ProviderRegistry:
        registry = cls()
        for ep in eps if eps is not None else list(entry_points(group=ENTRY_POINT_GROUP)):
            dist = ep.dist
            package = (dist.name, dist.version) if dist is not None else (None, None)
            try:
                loaded = ep.load()
            except Exception as exc:  # a third-party bug must not take the CLI down
                registry.broken.append(BrokenPlugin(ep.name, package[0], f"{type(exc).__name__}: {exc}", package[1]))
                continue
            registry._admit(ep.name, loaded, package)
        return registry

    def _admit(self, name: str, loaded: object, package: tuple[str | None, str | None]) -> None:
        problems = self._problems(name, loaded)
        if problems:
            self.broken.append(BrokenPlugin(name, package[0], "; ".join(problems), package[1]))
            return
        assert isinstance(loaded, type) and issubclass(loaded, Provider)
        self.classes[name] = loaded
        self.packages[name] = package

    def _problems(self, name: str, loaded: object) -> list[str]:
        """What is unsound in the class registered as ``name`` (empty when it may be used)."""
        if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
            return [f"{loaded!r} is not a gpuctl Provider subclass"]
        declared = {attr: inspect.getattr_static(loaded, attr, None) for attr in (
            "name", "display_name", "capabilities", "config_keys", "catalog_file", "timeout", "call_timeout",
            "own_process")}
        problems = []
        if not isinstance(declared["name"], str) or not _NAME.match(declared["name"]):
            problems.append("'name' must be a short lowercase string (letters, digits, '-', '_')")
        elif declared["name"] != name:
            problems.append(f"its class is named '{declared['name']}' but its entry point '{name}'")
        if not isinstance(declared["display_name"], str) or not declared["display_name"].strip():
            problems.append("'display_name' must be a non-empty string")
        problems += declaration_problems(declared["capabilities"])  # type: ignore[arg-type]
        problems += self._key_problems(declared["config_keys"])
        if declared["catalog_file"] is not None and not isinstance(declared["catalog_file"], str):
            problems.append("'catalog_file' must be a file name or None")
        for attr in ("timeout", "call_timeout"):
            value = declared[attr]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"'{attr}' must be a positive number of seconds")
        if not isinstance(declared["own_process"], bool):
            problems.append("'own_process' must be True or False")
        if inspect.isabstract(loaded):
            problems.append(f"does not implement {', '.join(sorted(loaded.__abstractmethods__))}")
        return problems

    def _key_problems(self, keys: object) -> list[str]:
        if not isinstance(keys, (tuple, list)) or not all(isinstance(k, ConfigKey) for k in keys):
            return ["'config_keys' must be a tuple of gpuctl.config.ConfigKey"]
        taken = self.config_keys()
        names = [key.name for key in keys]
        problems = [f"declares config key '{n}' twice" for n in sorted({n for n in names if names.count(n) > 1})]
        problems += [f"config key '{key.name}' is already declared differently"
                     for key in keys if key.name in taken and taken[key.name] != key]
        return problems

    def names(self) -> list[str]:
        return sorted(self.classes)

    def config_keys(self) -> dict[str, ConfigKey]:
        """Every key gpuctl knows: its own, then each installed provider's (shared ones appear once)."""
        keys = {key.name: key for key in CORE_KEYS}
        for name in self.names():
            keys.update((key.name, key) for key in self.classes[name].config_keys)
        return keys

    def create(self, name: str, *, timeout: float | None = None) -> Provider:
        """Provider ``name``, guarded; ``timeout`` lowers its request timeout for this command. An unknown or
        broken name is exit 2 with close matches; a plugin that cannot even be constructed, exit 4."""
        try:
            provider_cls = self.classes[name]
        except KeyError:
            broken = next((b for b in self.broken if b.name == name), None)
            if broken:
                raise UsageError(f"provider '{name}' failed to load: {broken.error}",
                                 f"reinstall or upgrade {broken.package or 'the plugin'}") from None
            close = difflib.get_close_matches(name, self.classes, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"installed: {', '.join(self.names())}"
            raise UsageError(f"unknown provider '{name}'", hint) from None
        guarded = self._guarded.get(name)
        if guarded is None:
            guarded = self._guarded[name] = guarded_class(provider_cls, self.packages[name], self.note_failure)
        try:
            inner = provider_cls()
            if timeout is not None:
                inner.timeout = min(float(inner.timeout), timeout)
            return guarded(inner)
        except Exception as exc:  # a plugin whose constructor fails is broken, not gpuctl
            error = PluginError(name, f"failed: constructing it raised {type(exc).__name__}: {exc}",
                                blame_hint(*self.packages[name]))
            self.note_failure(error)
            raise error from exc

    def note_failure(self, error: PluginError) -> None:
        """Record that a plugin misbehaved (its first failure is the one named)."""
        self.failures.setdefault(error.plugin, error)

    def trouble_line(self, *, except_for: str | None = None) -> str | None:
        """One line naming every broken plugin and what went wrong, or None when all are well.
        ``except_for``: a plugin the command's own error already names."""
        troubles = [(b.name, f"failed to load: {b.error}", f"reinstall or upgrade {b.package or 'the plugin'}")
                    for b in self.broken]
        troubles += [(name, error.problem, error.hint) for name, error in sorted(self.failures.items())
                     if name != except_for]
        if not troubles:
            return None
        if len(troubles) == 1:
            name, problem, hint = troubles[0]
            return f"provider plugin '{name}' {problem}; skipped (hint: {hint})"
        hints = "; ".join(dict.fromkeys(hint for _, _, hint in troubles))
        return (f"{len(troubles)} provider plugins broken, skipped: "
                + "; ".join(f"{name} {problem}" for name, problem, _ in troubles) + f" (hint: {hints})")

    def info(self) -> list[ProviderInfo]:
        """One row per installed plugin, broken ones included, for ``gpuctl providers``."""
        rows = []
        for name in self.names():
            provider_cls = self.classes[name]
            package, version = self.packages[name]
            row = ProviderInfo(name=name, display_name=provider_cls.display_name, package=package, version=version,
                               status="ok", capabilities=sorted(c.value for c in provider_cls.capabilities),
                               config_keys=[key.name for key in provider_cls.config_keys])
            try:
                creds = self.create(name).credentials()
            except PluginError as exc:
                rows.append(row.model_copy(update={"status": "broken", "error": exc.message}))
                continue
            rows.append(row.model_copy(update={"credentials": "present" if creds.present else "missing",
                                               "credential_source": creds.source, "hint": creds.hint}))
        rows += [ProviderInfo(name=b.name, package=b.package, version=b.version, status="broken", error=b.error)
                 for b in self.broken]
        return rows
