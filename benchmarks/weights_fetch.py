"""How much of a link the weights downloaders use, against one stand-in hub, in one run.

Usage: python benchmarks/weights_fetch.py [--smoke] [--shards N] [--shard-mb MB] [--conn-mbs MB/S]
           [--link-mbs MB/S] [--rtt-ms MS] [--connections C] [--part-mb MB] [--only NAMES] [--json]

The stand-in hub (tests/standins/hub_server.py) serves a model of ``--shards`` safetensors shards
of ``--shard-mb`` MB each (made as they are read: nothing GB-sized in memory) through a shaped
network: each connection is capped at ``--conn-mbs``, all of them share a link of ``--link-mbs``,
every answer comes one ``--rtt-ms`` after its request and a new connection costs one more (its
handshake). Large files are redirected to the stand-in's storage on another port, as the hub does.
Defaults: 50 MB/s per connection, a 400 MB/s link, 30 ms, 4 shards of 1000 MB (MB = 10^6 bytes);
``--smoke`` makes it a few seconds (2 shards of 24 MB, 8 MB/s per connection, a 40 MB/s link).

Downloaders, each into an empty cache, one after the other (``--only`` picks some):

- ``old``: the fetcher as it was before ranged parts (one connection per file, 8 files at once),
  read from git at BASELINE (``--baseline REV``), never kept in the tree;
- ``new``: gpuctl/weights/fetcher.py of this checkout (``--connections``, ``--part-mb``), in ranged
  parts over several connections, hashing in file order as the parts arrive;
- ``hf``: huggingface_hub's ``snapshot_download`` (8 files at once) with ``HF_ENDPOINT`` at the stand-in.

Each is a fresh process; its time runs from start to exit. "Link share" is what the link allows
(all bytes at ``--link-mbs``, plus one round trip) over the measured time. Every downloaded file
is checked against its sha256 afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpuctl.weights import fetcher  # noqa: E402
from tests.standins.hub_server import HubRepo, HubServer, Shaping, SyntheticFile  # noqa: E402

#: the last commit whose fetcher downloaded one connection per file
BASELINE = "f9ca9918871b7a4ee65939e88f992613fe92ce61"
MB = 1_000_000
MODEL = "bench-org/bench-model"
RUNNERS = ("old", "new", "hf")
#: files at once: what gpuctl's ensure_cached asks of the fetcher, and snapshot_download's default
WORKERS = 8


@dataclass
class Result:
    name: str
    seconds: float
    mb_per_s: float
    link_share: float
    most_connections: int
    after_last_byte: float
    cpu_seconds: float
    verified: bool
    note: str = ""


def model(shards: int, shard_bytes: int) -> HubRepo:
    files: dict[str, bytes | SyntheticFile] = {"config.json": b'{"model_type": "llama"}\n'}
    for n in range(shards):
        files[f"model-{n + 1:05d}-of-{shards:05d}.safetensors"] = SyntheticFile(shard_bytes, seed=n + 1)
    return HubRepo(repo=MODEL, files=files)


def job(hub: HubServer, repo: HubRepo, **options: object) -> dict:
    files = []
    for name, data in sorted(repo.files.items()):
        lfs = repo.is_lfs(name)
        files.append({"name": name, "size": len(data), "algo": fetcher.SHA256 if lfs else fetcher.GIT_SHA1,
                      "digest": repo.sha256(name) if lfs else repo.blob_id(name)})
    manifest = {"repo": repo.repo, "revision": "main", "commit": repo.commit, "format": "safetensors",
                "gated": False, "files": files}
    return {"endpoint": hub.url, "manifest": manifest, "workers": WORKERS, **options}


def baseline_source(rev: str, into: Path) -> Path | None:
    """The fetcher at ``rev``, written to a temporary file (None when git or the commit is not there)."""
    try:
        source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:gpuctl/weights/fetcher.py"],
                                capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = into / "fetcher_baseline.py"
    path.write_bytes(source)
    return path


def verified(cache: Path, repo: HubRepo) -> bool:
    """Every shard in the cache's blobs matches its sha256 (read back once, after the clock stopped)."""
    blobs = cache / "hub" / fetcher.repo_folder(repo.repo) / "blobs"
    for name in repo.files:
        if not repo.is_lfs(name):
            continue
        path = blobs / repo.sha256(name)
        if not path.is_file() or path.stat().st_size != len(repo.files[name]):
            return False
        if fetcher.hash_file(str(path), fetcher.SHA256, len(repo.files[name])) != repo.sha256(name):
            return False
    return True


def measure(name: str, repo: HubRepo, shaping: Shaping, work: Path, script: Path | None,
            options: dict[str, object]) -> Result:
    """One downloader into an empty cache, as a fresh process: ``script`` (a fetcher) or huggingface_hub."""
    total = sum(len(data) for data in repo.files.values())
    cache = work / name / "cache"
    cache.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    with HubServer(shaping=shaping) as hub:
        hub.add(repo)
        if script is None:
            env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(work / name / "hf-home"),
                        "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})
            code = ("import sys; from huggingface_hub import snapshot_download; "
                    f"snapshot_download({MODEL!r}, cache_dir=sys.argv[1], max_workers={WORKERS})")
            command = [sys.executable, "-c", code, str(cache / "hub")]
        else:
            job_file = work / name / "job.json"
            job_file.write_text(json.dumps(job(hub, repo, **options)))
            command = [sys.executable, str(script), "fetch", "--cache", str(cache), "--job", str(job_file)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        tail = time.monotonic() - hub.last_sent_at  # verifying and linking after the last byte, and exiting
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        most = hub.most_at_once
    ok = done.returncode == 0 and verified(cache, repo)
    note = "" if done.returncode == 0 else f"exit {done.returncode}: {(done.stderr or done.stdout)[-300:]}"
    ideal = total / shaping.link + shaping.rtt if shaping.link else 0.0
    shutil.rmtree(work / name, ignore_errors=True)
    return Result(name, round(seconds, 2), round(total / seconds / MB, 1),
                  round(ideal / seconds, 3) if ideal else 0.0, most, round(tail, 2), round(cpu, 2), ok, note)


def run(args: argparse.Namespace) -> list[Result]:
    shaping = Shaping(per_connection=args.conn_mbs * MB, link=args.link_mbs * MB, rtt=args.rtt_ms / 1000)
    repo = model(args.shards, int(args.shard_mb * MB))
    total = sum(len(data) for data in repo.files.values())
    results = []
    with tempfile.TemporaryDirectory(prefix="gpuctl-weights-bench-") as tmp:
        work = Path(tmp)
        free = shutil.disk_usage(work).free
        if free < 1.2 * total:
            raise SystemExit(f"{work} has {free / MB:.0f} MB free; the benchmark writes {total / MB:.0f} MB at a time")
        parts = {"connections": args.connections, "part_size": int(args.part_mb * MB)}
        for name in args.only:
            if name == "old":
                script = baseline_source(args.baseline, work)
                if script is None:
                    missing = f"commit {args.baseline[:12]} not in this clone"
                    results.append(Result(name, 0, 0, 0, 0, 0, 0, False, missing))
                    continue
                results.append(measure(name, repo, shaping, work, script, {}))
            elif name == "hf":
                results.append(measure(name, repo, shaping, work, None, {}))
            else:
                results.append(measure(name, repo, shaping, work, Path(fetcher.__file__), parts))
    return results


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds: small shards, a slow link")
    parser.add_argument("--shards", type=int)
    parser.add_argument("--shard-mb", type=float)
    parser.add_argument("--conn-mbs", type=float, help="cap of each connection, MB/s")
    parser.add_argument("--link-mbs", type=float, help="the link all connections share, MB/s")
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=fetcher.CONNECTIONS)
    parser.add_argument("--part-mb", type=float, default=fetcher.PART_SIZE / MB)
    parser.add_argument("--only", default=",".join(RUNNERS), help="comma-separated: " + ", ".join(RUNNERS))
    parser.add_argument("--baseline", default=BASELINE, help="the commit whose fetcher is 'old'")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    smoke = {"shards": 2, "shard_mb": 24.0, "conn_mbs": 8.0, "link_mbs": 40.0}
    full = {"shards": 4, "shard_mb": 1000.0, "conn_mbs": 50.0, "link_mbs": 400.0}
    for key, value in (smoke if args.smoke else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.smoke and args.part_mb == fetcher.PART_SIZE / MB:
        args.part_mb = 4.0  # several parts per shard at smoke sizes too
    args.only = [name for name in args.only.split(",") if name]
    unknown = set(args.only) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown downloader(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse(argv)
    results = run(args)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=1))
        return results
    total = args.shards * args.shard_mb
    print(f"{args.shards} shards x {args.shard_mb:g} MB = {total:g} MB; {args.conn_mbs:g} MB/s per connection, "
          f"link {args.link_mbs:g} MB/s, RTT {args.rtt_ms:g} ms; new fetcher: {args.connections} connections, "
          f"{args.part_mb * MB / (1 << 20):.3g} MiB parts; "
          f"the link allows {total / args.link_mbs + args.rtt_ms / 1000:.2f} s")
    print(f"{'downloader':<11}{'seconds':>9}{'MB/s':>8}{'link share':>12}{'connections':>13}"
          f"{'after last byte':>17}{'CPU s':>7}  verified")
    for r in results:
        print(f"{r.name:<11}{r.seconds:>9.2f}{r.mb_per_s:>8.1f}{r.link_share:>11.0%} {r.most_connections:>12}"
              f"{r.after_last_byte:>15.2f} s{r.cpu_seconds:>7.2f}  "
              f"{'yes' if r.verified else 'NO'}{'  ' + r.note if r.note else ''}")
    return results


if __name__ == "__main__":
    main()
