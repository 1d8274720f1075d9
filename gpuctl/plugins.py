"""Discovery of provider plugins through the ``gpuctl.providers`` entry-point group."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from gpuctl.errors import UsageError
from gpuctl.providers.base import Provider, ProviderInfo

ENTRY_POINT_GROUP = "gpuctl.providers"


@dataclass
class BrokenPlugin:
    name: str
    package: str | None
    error: str


@dataclass
class ProviderRegistry:
    """The installed providers. One broken plugin is recorded by name and never breaks the rest."""

    classes: dict[str, type[Provider]] = field(default_factory=dict)
    packages: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)

    @classmethod
    def discover(cls, eps: list[EntryPoint] | None = None) -> ProviderRegistry:
        registry = cls()
        for ep in eps if eps is not None else list(entry_points(group=ENTRY_POINT_GROUP)):
            dist = ep.dist
            package = (dist.name, dist.version) if dist is not None else (None, None)
            try:
                loaded = ep.load()
                if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
                    raise TypeError(f"{ep.value} is not a gpuctl Provider subclass")
            except Exception as exc:  # a third-party bug must not take the CLI down
                registry.broken.append(BrokenPlugin(ep.name, package[0], f"{type(exc).__name__}: {exc}"))
                continue
            registry.classes[ep.name] = loaded
            registry.packages[ep.name] = package
        return registry

    def names(self) -> list[str]:
        return sorted(self.classes)

    def create(self, name: str) -> Provider:
        """An instance of provider ``name``; unknown names get exit 2 with close matches."""
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
        return provider_cls()

    def info(self) -> list[ProviderInfo]:
        """One row per installed plugin, broken ones included, for ``gpuctl providers``."""
        rows = []
        for name in self.names():
            provider = self.create(name)
            creds = provider.credentials()
            package, version = self.packages[name]
            rows.append(ProviderInfo(
                name=name, display_name=provider.display_name, package=package, version=version,
                status="ok", credentials="present" if creds.present else "missing",
                credential_source=creds.source, hint=creds.hint,
            ))
        rows += [ProviderInfo(name=b.name, package=b.package, status="broken", error=b.error)
                 for b in self.broken]
        return rows
