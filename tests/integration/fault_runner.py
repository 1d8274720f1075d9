"""``gpuctl`` as the fault tests run it in a process of its own: the real providers, and the few test
backdoors their end-to-end tests use in-process (machines log in as root: the fake GPU hosts have no
``ubuntu`` user)::

    python -m tests.integration.fault_runner up tiny --provider lambda ...
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    from gpuctl.__main__ import main as gpuctl_main
    from gpuctl.providers import aws_launch, lambda_cloud

    lambda_cloud.SSH_USER = "root"  # type: ignore[misc]
    aws_launch.UBUNTU_USER = "root"  # type: ignore[misc]
    gpuctl_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
