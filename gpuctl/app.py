"""The context object every command receives: flags, project, state, config, providers, consoles."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from gpuctl.envvars import Env

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from gpuctl.config import UserConfig
    from gpuctl.plugins import ProviderRegistry
    from gpuctl.project import ProjectFile
    from gpuctl.state import StateStore


#: columns a table may use when stdout is a pipe or a file (rows are never folded there)
PIPE_WIDTH = 400


@dataclass
class App:
    """Built by the root command; heavy parts are created on first use so start-up stays fast."""

    json: bool = False
    quiet: bool = False
    verbose: int = 0
    no_color: bool = False
    yes: bool = False
    interactive: bool | None = None
    project_dir: str | None = None

    @property
    def color(self) -> bool:
        return not (self.no_color or self.json or os.environ.get(Env.NO_COLOR)) and sys.stderr.isatty()

    @property
    def can_prompt(self) -> bool:
        """Whether asking the user is allowed: never without a TTY, never under --json."""
        if self.interactive is False or self.json:
            return False
        return sys.stdin.isatty() and sys.stderr.isatty()

    @cached_property
    def project_root(self) -> Path:
        from gpuctl.project import resolve_project_root

        return resolve_project_root(self.project_dir)

    @cached_property
    def project(self) -> ProjectFile:
        from gpuctl.project import load_project_file

        return load_project_file(self.project_root)

    @cached_property
    def state(self) -> StateStore:
        from gpuctl.state import StateStore

        return StateStore(self.project_root)

    @cached_property
    def config(self) -> UserConfig:
        from gpuctl.config import UserConfig

        return UserConfig()

    @cached_property
    def registry(self) -> ProviderRegistry:
        from gpuctl.plugins import ProviderRegistry

        return ProviderRegistry.discover()

    @cached_property
    def err(self) -> Console:
        """stderr: progress, warnings, errors."""
        from rich.console import Console

        # no colour means no styling at all: rich's no_color alone still prints bold
        return Console(stderr=True, no_color=not self.color, color_system="auto" if self.color else None,
                       highlight=False, soft_wrap=True)

    @cached_property
    def out(self) -> Console:
        """stdout: data only (tables). Off a terminal, tables keep their natural width instead of folding
        into 80 columns, so a pipe or a file gets one row per line."""
        from rich.console import Console

        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
        plain = self.no_color or bool(os.environ.get(Env.NO_COLOR))
        return Console(no_color=plain, color_system=None if plain else "auto", highlight=False, width=width)
