"""The weights benchmark, run as CI can afford it: tiny shards, a slow shaped link, every downloader once.

The full figures (4 shards of 1000 MB, 50 MB/s per connection, a 400 MB/s link, 30 ms) come from
``python benchmarks/weights_fetch.py`` and are quoted in docs/weights.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "weights_fetch.py"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(180)
def test_the_benchmark_runs_every_downloader_and_verifies_what_they_fetched() -> None:
    import huggingface_hub  # noqa: F401  (a test extra: a missing one must fail, not skip)
    done = subprocess.run([sys.executable, str(BENCHMARK), "--smoke", "--shard-mb", "8", "--conn-mbs", "8",
                           "--link-mbs", "32", "--rtt-ms", "10", "--part-mb", "2", "--json"],
                          capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr
    results = {r["name"]: r for r in json.loads(done.stdout)}
    assert set(results) == {"old", "new", "hf"}
    for name in ("new", "hf"):
        assert results[name]["verified"] and results[name]["seconds"] > 0, results[name]
    old = results["old"]
    assert old["verified"] or "not in this clone" in old["note"], old  # a shallow clone has no baseline
    assert results["new"]["most_connections"] > 2  # more connections than files: parts of one file at once
    assert 0 < results["new"]["link_share"] <= 1.05
