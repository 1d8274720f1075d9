"""Entry point of the ``gpuctl`` console script and ``python -m gpuctl``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from gpuctl.cli import cli

    cli.main(args=argv, prog_name="gpuctl")


if __name__ == "__main__":
    main(sys.argv[1:])
