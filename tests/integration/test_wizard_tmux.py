"""The wizard in a real terminal: tmux runs ``python -m gpuctl``, keys go in with send-keys, the screen comes
back with capture-pane. No credentials, so every price is a dated snapshot and nothing can launch."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt install tmux)")]

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 20.0
POINTER = "»"


class Terminal:
    """One tmux server on a private socket, running one gpuctl command in a 220x50 pane."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.socket = workdir / "tmux.sock"
        self.env = {**env, "TERM": "xterm-256color", "PYTHONPATH": str(REPO)}
        self.out, self.status = workdir / "stdout.txt", workdir / "exit.txt"
        self.pid: int | None = None
        self.config = workdir / "tmux.conf"
        self.config.write_text("set -g remain-on-exit on\n")  # the last screen stays readable after gpuctl exits

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), "-f", str(self.config), *args], capture_output=True,
                              text=True, env=self.env, timeout=10, check=True).stdout

    def start(self, args: list[str], cwd: Path) -> None:
        # stdout to a file (what a script would capture), stderr stays the terminal the prompts draw on
        command = (f"cd {shlex.quote(str(cwd))} && {shlex.quote(sys.executable)} -m gpuctl {shlex.join(args)} "
                   f"> {shlex.quote(str(self.out))}; echo $? > {shlex.quote(str(self.status))}")
        self.tmux("new-session", "-d", "-s", "wizard", "-x", "220", "-y", "50", "sh", "-c", command)
        self.pid = int(self.tmux("display-message", "-p", "-t", "wizard", "#{pid}").strip())

    def screen(self) -> list[str]:
        return [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", "wizard").splitlines()]

    def wait_for(self, seen: Callable[[list[str]], bool], what: str) -> list[str]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.status.exists() and self.status.read_text().strip():
                break  # the command ended: the screen will not change any more
            lines = self.screen()
            if seen(lines):
                return lines
            time.sleep(0.05)
        raise AssertionError(f"never saw {what}; the screen:\n" + "\n".join(self.screen()))

    def question(self, prompt: str) -> list[str]:
        """The choice lines of the question starting with ``prompt``, once it is the one being asked."""
        def asking(lines: list[str]) -> bool:
            asked = [i for i, line in enumerate(lines) if line.startswith("? ")]
            return bool(asked) and lines[asked[-1]].startswith(f"? {prompt}")
        lines = self.wait_for(asking, f"the question '{prompt}'")
        last = max(i for i, line in enumerate(lines) if line.startswith("? "))
        return [line for line in lines[last + 1:] if line]

    def choose(self, prompt: str, wanted: Callable[[str], bool]) -> str:
        """Move the pointer to the first choice whose text satisfies ``wanted``, then press Enter."""
        choices = self.question(prompt)
        texts = [line[3:] for line in choices]
        target = next(i for i, text in enumerate(texts) if wanted(text))
        current = next(i for i, line in enumerate(choices) if line.lstrip().startswith(POINTER))
        key = "Down" if target > current else "Up"
        for _ in range(abs(target - current)):
            self.tmux("send-keys", "-t", "wizard", key)
        self.wait_for(lambda lines: any(line.lstrip().startswith(POINTER) and line[3:] == texts[target]
                                        for line in lines), f"the pointer on '{texts[target]}'")
        self.tmux("send-keys", "-t", "wizard", "Enter")
        return texts[target]

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "wizard", *keys)

    def finished(self) -> int:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.status.exists() and self.status.read_text().strip():
                return int(self.status.read_text())
            time.sleep(0.05)
        raise AssertionError("gpuctl did not exit; the screen:\n" + "\n".join(self.screen()))

    def stop(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)


@pytest.fixture
def terminal(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(tmp_path, subprocess_env)
    try:
        yield term
    finally:
        term.stop()


def first_word(word: str) -> Callable[[str], bool]:
    return lambda text: text.split()[:1] == [word]


def test_happy_path_prints_the_command_and_writes_the_project(terminal: Terminal, isolated: Path) -> None:
    from gpuctl.models.offer import OfferQuery
    from gpuctl.pricing import collect_offers
    from gpuctl.wizard import price_ceiling

    [aws_l40s] = [o for o in collect_offers(OfferQuery(gpus=["L40S"], gpu_count=1), providers=["aws"]).offers]
    terminal.start(["up", "-i", "--print-command"], isolated)
    terminal.choose("Model:", first_word("qwen2.5-7b"))
    assert terminal.choose("GPU for qwen2.5-7b", lambda text: text.startswith("1 x L40S")).endswith("*)")
    offer = terminal.choose("Offer:", first_word("aws"))
    assert offer.endswith(f"snapshot price of {aws_l40s.as_of:%Y-%m-%d}")
    terminal.choose("Engine:", first_word("vllm"))
    terminal.choose("Time to live", first_word("4h"))
    terminal.question("Write gpuctl.yaml and print the command?")
    terminal.keys("y")
    assert terminal.finished() == 0
    assert terminal.out.read_text() == (
        "gpuctl up qwen2.5-7b --gpu L40S --count 1 --provider aws --engine vllm --ttl 4h "
        f"--max-price {price_ceiling(aws_l40s.price_per_hour)}\n")
    assert yaml.safe_load((isolated / "gpuctl.yaml").read_text()) == {
        "model": "qwen2.5-7b", "gpu": "L40S", "provider": "aws", "engine": "vllm", "ttl": "4h"}
    assert any(line.startswith("qwen2.5-7b with vllm on aws 1 x L40S (g6e.xlarge, us-east-1) at $")
               for line in terminal.screen())


def test_escape_at_the_first_question_of_bare_gpuctl_exits_130(terminal: Terminal, isolated: Path) -> None:
    terminal.start([], isolated)
    terminal.question("Model:")
    terminal.keys("Escape")
    assert terminal.finished() == 130
    assert "error: wizard cancelled: nothing was written or launched" in terminal.screen()
    assert terminal.out.read_text() == ""
    assert sorted(path.name for path in isolated.iterdir()) == []


def test_ctrl_c_late_in_the_wizard_writes_and_launches_nothing(terminal: Terminal, isolated: Path) -> None:
    terminal.start(["up", "-i"], isolated)
    terminal.choose("Model:", first_word("phi-3-mini"))
    terminal.choose("GPU for phi-3-mini", lambda text: True)
    terminal.choose("Offer:", lambda text: True)
    terminal.choose("Engine:", first_word("vllm"))
    terminal.question("Time to live")
    terminal.keys("C-c")
    assert terminal.finished() == 130
    assert terminal.out.read_text() == ""
    assert sorted(path.name for path in isolated.iterdir()) == []
