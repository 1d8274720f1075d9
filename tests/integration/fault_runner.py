"""``gpuctl`` as the fault tests run it in a process of its own: the real providers, and the few test
backdoors their end-to-end tests use in-process. Machines log in as root (the fake GPU hosts have no
``ubuntu`` user); with ``FAULT_RUNNER_AWS_PRICES=1`` the AWS price list comes from tests/providers/aws_fakes.py
(moto has no Price List API), and ``FAULT_RUNNER_AWS_ERRORS=Operation=Code,...`` makes those EC2 calls fail::

    python -m tests.integration.fault_runner up tiny --provider lambda ...
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main(argv: list[str]) -> None:
    from gpuctl.__main__ import main as gpuctl_main
    from gpuctl.providers.aws import client as aws
    from gpuctl.providers.aws import launch as aws_launch
    from gpuctl.providers.lambda_cloud import mapping as lambda_mapping
    from gpuctl.providers.lambda_cloud import provider as lambda_provider

    lambda_mapping.SSH_USER = lambda_provider.SSH_USER = "root"  # type: ignore[misc]
    aws_launch.UBUNTU_USER = "root"  # type: ignore[misc]
    if os.environ.get("FAULT_RUNNER_AWS_PRICES") == "1":
        from tests.providers.aws_fakes import FakeAws

        prices, new_session = FakeAws(), aws.new_session
        for item in filter(None, os.environ.get("FAULT_RUNNER_AWS_ERRORS", "").split(",")):
            operation, _, code = item.partition("=")
            prices.errors[operation] = code

        def priced_session(**kwargs: Any) -> Any:
            return prices.install(new_session(**kwargs))

        aws.new_session = priced_session  # type: ignore[assignment]
    gpuctl_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
