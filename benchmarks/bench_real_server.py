#!/usr/bin/env python3
"""``gpuctl bench`` against a real inference server, judged by the server's own per-request timings.

The server is llama.cpp's ``llama-server``, built once (CPU only) from the llama.cpp copy inside the
``llama-cpp-python`` sdist on PyPI into a cache directory; the model is a tiny random-weight
Llama-3-architecture GGUF written with the ``gguf`` package (no download of weights). For each
concurrency this runs the real ``gpuctl bench URL`` command, then compares what it reports with what
the server logged for the same requests (``prompt eval time`` = prefill, ``eval time`` per token =
TPOT), and prints requests ok / failed, TPOT and TTFT side by side.

    python3 benchmarks/bench_real_server.py                      # build if needed, run c=1,4,16
    python3 benchmarks/bench_real_server.py --build-only         # just build the server
    python3 benchmarks/bench_real_server.py --concurrency 1,4,16,64 --json

Building takes 10-30 minutes on 2 cores (run it under ``nice``); later runs reuse the cache. It needs
cmake, a C++ compiler and PyPI; it is too slow for CI, which keeps the stand-ins.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gpuctl.bench.loadgen import _PROMPT_WORDS  # noqa: E402  (the words gpuctl's prompts are made of)

LLAMA_CPP_PYTHON = "0.3.36"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpuctl" / "bench-real-server"
# The tiny model: Llama-3's architecture (RMSNorm, RoPE theta 500000, grouped-query attention, SwiGLU)
# at toy size, random weights. It generates nonsense quickly, which is all a client benchmark needs.
MODEL = {"n_embd": 256, "n_layer": 4, "n_head": 8, "n_head_kv": 2, "n_ff": 768, "n_ctx_train": 8192}
SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_server(cache: Path, version: str = LLAMA_CPP_PYTHON, jobs: int = 2) -> Path:
    """Return the cached ``llama-server`` binary, building it from the PyPI sdist when absent."""
    binary = cache / f"llama-server-{version}" / "llama-server"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
        work = Path(tmp)
        log(f"downloading the llama-cpp-python {version} sdist from PyPI ...")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
                        f"llama-cpp-python=={version}", "-d", str(work)], check=True)
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name]
            archive.extractall(work, members=members, filter="data")
        source = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = work / "build"
        log(f"building llama-server from {source.relative_to(work)} (CPU only, {jobs} jobs) ...")
        subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                        "-DLLAMA_BUILD_SERVER=ON", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON",
                        *(["-G", "Ninja"] if shutil.which("ninja") else [])],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)], check=True)
        built = next(build.rglob("bin/llama-server"))
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, binary.with_suffix(".tmp"))
        os.replace(binary.with_suffix(".tmp"), binary)
    log(f"llama-server cached at {binary}")
    return binary



# -- the model ---------------------------------------------------------------------------------------
def _byte_symbols() -> list[str]:
    """Byte-level BPE's printable stand-in for each of the 256 byte values (GPT-2's scheme, which
    Llama 3's tokenizer uses): printable Latin-1 bytes stand for themselves, the others are moved to
    code points from 256 up, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    symbols = {}
    extra = 0
    for b in range(256):
        if b in keep:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def _vocabulary() -> tuple[list[str], list[str]]:
    """Tokens and merges of a small byte-level BPE vocabulary in which every prompt word (with and
    without its leading space) is one token, as in real vocabularies, so prompts have the length asked.
    Every substring of such a word is a token and every split of one into two substrings a merge, so
    the merges reach the whole word whatever order they are applied in."""
    byte_symbols = _byte_symbols()
    space = byte_symbols[ord(" ")]
    words = sorted({w for word in _PROMPT_WORDS for w in (word, space + word)})
    pieces: set[str] = set()
    merges: dict[str, int] = {}
    for word in words:
        for i in range(len(word)):
            for k in range(i + 2, len(word) + 1):
                pieces.add(word[i:k])
                for j in range(i + 1, k):
                    merges.setdefault(f"{word[i:j]} {word[j:k]}", k - i)
    tokens = [*byte_symbols, *sorted(pieces - set(byte_symbols), key=lambda t: (len(t), t))]
    ordered = sorted(merges, key=lambda m: (merges[m], m))  # shorter results first
    return tokens, ordered


def write_model(path: Path, seed: int = 0) -> Path:
    """Write the tiny random-weight Llama-3-architecture model as GGUF (F32) at ``path``."""
    if path.exists():
        return path
    try:
        import gguf
        import numpy as np
    except ImportError:
        sys.exit("bench_real_server: needs the gguf package (pip install gguf)")
    tokens, merges = _vocabulary()
    tokens += SPECIALS
    n_vocab = len(tokens)
    m = MODEL
    head_dim = m["n_embd"] // m["n_head"]
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tmp = path.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name("gpuctl tiny llama-3 (random weights)")
    writer.add_context_length(m["n_ctx_train"])
    writer.add_embedding_length(m["n_embd"])
    writer.add_block_count(m["n_layer"])
    writer.add_feed_forward_length(m["n_ff"])
    writer.add_head_count(m["n_head"])
    writer.add_head_count_kv(m["n_head_kv"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * (n_vocab - len(SPECIALS))
                           + [gguf.TokenType.CONTROL] * len(SPECIALS))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|begin_of_text|>"))
    writer.add_eos_token_id(tokens.index("<|eot_id|>"))
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)
    kv = m["n_head_kv"] * head_dim
    writer.add_tensor("token_embd.weight", weight(n_vocab, m["n_embd"]))
    for i in range(m["n_layer"]):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(m["n_embd"], dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(m["n_embd"], m["n_embd"]))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv, m["n_embd"]))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv, m["n_embd"]))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(m["n_embd"], m["n_embd"]))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(m["n_embd"], dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(m["n_ff"], m["n_embd"]))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(m["n_ff"], m["n_embd"]))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(m["n_embd"], m["n_ff"]))
    writer.add_tensor("output_norm.weight", np.ones(m["n_embd"], dtype=np.float32))
    writer.add_tensor("output.weight", weight(n_vocab, m["n_embd"]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    log(f"wrote {path.name}: {n_vocab} tokens, {m['n_layer']} layers of {m['n_embd']}")
    return path


# -- the server ---------------------------------------------------------------------------------------
_PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_EVAL = re.compile(r"(?<!prompt )eval time =\s*([\d.]+) ms /\s*(\d+) tokens \(\s*([\d.]+) ms per token")


class LlamaServer:
    """llama-server on a free loopback port; its log holds per-request timings."""

    def __init__(self, binary: Path, model: Path, workdir: Path, parallel: int, slot_ctx: int,
                 threads: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "llama-server.log"
        self.command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
                        "-c", str(parallel * slot_ctx), "-np", str(parallel), "-t", str(threads),
                        "--no-webui", "--alias", "tiny-llama3"]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}): see {self.log_path}")
            try:
                with opener.open(self.url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("llama-server did not become healthy in 120 s")

    def __exit__(self, *_exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()

    def log_size(self) -> int:
        self.log_file.flush()
        return self.log_path.stat().st_size

    def timings_since(self, offset: int, expected: int) -> list[dict[str, float]]:
        """Per finished request, in the order they finished: prefill ms and tokens, decode ms per token.
        A request's timings are logged just after its response: wait (5 s at most) for ``expected``."""
        deadline = time.monotonic() + 5
        while len(timings := self._parse(offset)) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return timings

    def _parse(self, offset: int) -> list[dict[str, float]]:
        text = self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
        timings: list[dict[str, float]] = []
        for line in text.splitlines():
            if found := _PROMPT_EVAL.search(line):
                timings.append({"prefill_ms": float(found[1]), "prefill_tokens": int(found[2])})
            elif (found := _EVAL.search(line)) and timings and "tpot_ms" not in timings[-1]:
                timings[-1].update(tokens=int(found[2]), tpot_ms=float(found[3]))
        return timings


# -- the comparison -----------------------------------------------------------------------------------
def gpuctl_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment that makes ``python -m gpuctl`` (run outside any checkout) the one measured."""
    path = os.pathsep.join(p for p in (str(args.gpuctl_src or ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "NO_COLOR": "1", "PYTHONPATH": path}


def run_gpuctl(url: str, concurrency: int, requests: int, args: argparse.Namespace, cwd: Path) -> dict[str, Any]:
    """One ``gpuctl bench --url`` at one concurrency, as a user runs it; its exit code and JSON."""
    command = [sys.executable, "-m", "gpuctl", "bench", "--url", url, "-c", str(concurrency), "-n", str(requests),
               "--input-len", str(args.input_len), "--output-len", str(args.output_len),
               "--endpoint", args.endpoint, "--json", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, env=gpuctl_env(args), cwd=cwd, timeout=1800)
    try:
        run = json.loads(done.stdout)["runs"][0]
    except (ValueError, KeyError, IndexError):
        run = {}
    return {"exit": done.returncode, "run": run, "stderr": done.stderr.strip().splitlines()[-3:]}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def compare(concurrency: int, requests: int, client: dict[str, Any], server: list[dict[str, float]]) -> dict:
    """Client figures next to the server's own for the measured requests (the warm-up, one request per
    slot, finished first and is left out)."""
    measured = server[concurrency:]
    run = client["run"]
    ttft = (run.get("ttft_ms") or {}).get("mean")
    tpot = (run.get("tpot_ms") or {}).get("mean")
    prefill = _mean([t["prefill_ms"] for t in measured])
    server_tpot = _mean([t["tpot_ms"] for t in measured if "tpot_ms" in t])
    return {
        "concurrency": concurrency, "requests": requests, "exit": client["exit"],
        "ok": run.get("requests_ok"), "failed": run.get("requests_failed"),
        "causes": run.get("failed_by_cause") or {},
        "retried": run.get("retried_requests"),
        "served": len(measured),
        "prefill_tokens_per_request": _mean([t["prefill_tokens"] for t in measured]),
        "client_ttft_ms": ttft, "server_prefill_ms": prefill,
        "ttft_minus_prefill_ms": None if ttft is None or prefill is None else ttft - prefill,
        "client_tpot_ms": tpot, "server_tpot_ms": server_tpot,
        "tpot_error_ms": None if tpot is None or server_tpot is None else tpot - server_tpot,
        "client_saturated": run.get("client_saturated"),
        "stderr": client["stderr"],
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(rows: list[dict]) -> str:
    header = ("pass", "c", "exit", "ok / failed", "retried", "served", "prefill tok", "TTFT", "prefill",
              "TTFT-prefill", "TPOT", "server TPOT", "TPOT err", "saturated")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for r in rows:
        lines.append(" | ".join([
            str(r["pass"]), str(r["concurrency"]), str(r["exit"]), f"{_fmt(r['ok'])} / {_fmt(r['failed'])}",
            _fmt(r.get("retried")), str(r["served"]), _fmt(r["prefill_tokens_per_request"]),
            _fmt(r["client_ttft_ms"], 2), _fmt(r["server_prefill_ms"], 2), _fmt(r["ttft_minus_prefill_ms"], 2),
            _fmt(r["client_tpot_ms"], 3), _fmt(r["server_tpot_ms"], 3), _fmt(r["tpot_error_ms"], 3),
            _fmt(r["client_saturated"])]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--llama-cpp-python", default=LLAMA_CPP_PYTHON, metavar="VERSION",
                        help="the sdist whose llama.cpp copy is built")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--requests", type=int, default=48, help="measured requests per point (at least 8 x c)")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--endpoint", choices=("completions", "chat"), default="completions")
    parser.add_argument("--passes", type=int, default=2,
                        help="run the sweep this many times against one server (later passes show prompt reuse)")
    parser.add_argument("--threads", type=int, default=1, help="llama-server compute threads")
    parser.add_argument("--gpuctl-src", type=Path, help="measure the gpuctl in this source tree (e.g. an older one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    binary = build_server(args.cache_dir, args.llama_cpp_python, jobs=args.jobs)
    if args.build_only:
        print(binary)
        return 0
    model = write_model(args.cache_dir / "tiny-llama3-f32.gguf")
    points = [int(c) for c in args.concurrency.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-real-") as work, \
            LlamaServer(binary, model, Path(work), max(points), args.input_len + args.output_len + 64,
                        args.threads) as server:
        where = subprocess.run([sys.executable, "-c", "import gpuctl; print(gpuctl.__file__)"], cwd=work,
                               env=gpuctl_env(args), capture_output=True, text=True, check=True).stdout.strip()
        log(f"llama-server {server.url}, {max(points)} slots, {args.threads} thread(s); measuring {where}")
        for number in range(1, args.passes + 1):
            for concurrency in points:
                requests = max(args.requests, 8 * concurrency)
                offset = server.log_size()
                client = run_gpuctl(server.url, concurrency, requests, args, Path(work))
                answered = (client["run"].get("requests_ok") or 0) + concurrency  # + the warm-up
                row = compare(concurrency, requests, client, server.timings_since(offset, answered))
                row["pass"] = number
                rows.append(row)
                log(f"pass {number} c={concurrency}: exit {row['exit']}, {row['ok']} ok / {row['failed']} failed "
                    f"{row['causes'] or ''}")
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
