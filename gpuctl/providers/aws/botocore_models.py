"""A copy of botocore's EC2 model cut down to the calls the price listing makes.

botocore parses its whole EC2 model (3 MB of JSON, 0.15-0.2 s of CPU) for every new client,
while ``gpuctl prices`` uses three operations. The first listing derives a model holding only
those operations and the shapes they reach (about 50 KB, documentation dropped) and keeps it in
the cache dir, one copy per botocore version; later listings load that instead. A session given
this data path can make those three EC2 calls and no other, so it is only used for listing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpuctl.fsutil import atomic_write
from gpuctl.paths import cache_dir

log = logging.getLogger(__name__)

LISTING_OPERATIONS = ("DescribeInstanceTypes", "DescribeInstanceTypeOfferings", "DescribeSpotPriceHistory")


def listing_data_path() -> Path | None:
    """A botocore data path holding the cut-down EC2 model (made on first use); None if it cannot be."""
    import botocore

    root = cache_dir() / "botocore-models" / botocore.__version__
    if any(root.glob("ec2/*/service-2.json")):
        return root
    try:
        from botocore.loaders import Loader

        model = Loader().load_service_model("ec2", "service-2")
        trimmed = trim_model(model, LISTING_OPERATIONS)
        target = root / "ec2" / model["metadata"]["apiVersion"] / "service-2.json"
        atomic_write(target, json.dumps(trimmed), durable=False)
    except (OSError, KeyError, ValueError) as exc:
        log.debug("using botocore's full EC2 model: %s", exc)
        return None
    return root


def trim_model(model: dict[str, Any], operations: Iterable[str]) -> dict[str, Any]:
    """``model`` with only ``operations`` and the shapes they reference, without documentation."""
    shapes: dict[str, Any] = model["shapes"]
    keep: set[str] = set()

    def reach(name: str) -> None:
        if name in keep:
            return
        keep.add(name)
        shape = shapes[name]
        for ref in [shape.get(k) for k in ("member", "key", "value")] + list(shape.get("members", {}).values()):
            if ref:
                reach(ref["shape"])

    kept_operations = {name: model["operations"][name] for name in operations}
    for operation in kept_operations.values():
        for ref in [operation.get("input"), operation.get("output"), *operation.get("errors", [])]:
            if ref:
                reach(ref["shape"])
    return _undocumented({**model, "operations": kept_operations,
                          "shapes": {name: shapes[name] for name in sorted(keep)}})


def _undocumented(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _undocumented(v) for k, v in node.items() if k != "documentation"}
    if isinstance(node, list):
        return [_undocumented(v) for v in node]
    return node
