"""The host scripts: rendering, shellcheck, and their behaviour against fake nvidia-smi/docker."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gpuctl import templating
from gpuctl.templating import Raw, render, render_text

DEADLINE = 1_900_000_000
TOOLS = ("bash", "sh", "head", "df", "awk", "date", "sleep", "mkdir", "chmod", "cat", "touch")


def rendered_scripts() -> dict[str, str]:
    return {
        "bootstrap.sh": templating.bootstrap_script(cache_dir="/var/lib/gpuctl/hf-cache"),
        "watchdog.sh": templating.watchdog_script(deadline=DEADLINE, container="gpuctl-engine"),
        "aws-user-data.sh": templating.aws_user_data(deadline=DEADLINE, container="gpuctl-engine",
                                                     cache_dir="/var/lib/gpuctl/hf-cache"),
    }


def test_every_shipped_template_has_a_renderer() -> None:
    assert sorted(SCRIPTS) == templating.template_names()


SCRIPTS = rendered_scripts()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_rendered_scripts_are_complete_and_valid_bash(name: str, tmp_path: Path) -> None:
    text = SCRIPTS[name]
    assert "@@" not in text
    assert text.startswith("#!")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_rendered_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(SCRIPTS[name], encoding="utf-8")
    result = subprocess.run(["shellcheck", "--severity=style", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_values_are_shell_quoted_and_raw_is_verbatim() -> None:
    text = "a=@@A@@\nb=@@B@@\n"
    assert render_text(text, {"A": "x; rm -rf /", "B": Raw("$HOME")}) == "a='x; rm -rf /'\nb=$HOME\n"
    assert render_text("n=@@N@@", {"N": 3}) == "n=3"


@pytest.mark.parametrize(("values", "message"), [
    ({}, "missing A"),
    ({"A": 1, "TYPO": 2}, "unused TYPO"),
])
def test_missing_or_unused_values_are_errors(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_text("@@A@@", values)


def test_user_data_embeds_the_watchdog_and_bootstrap_and_no_secret() -> None:
    text = SCRIPTS["aws-user-data.sh"]
    watchdog = templating.watchdog_script(deadline=DEADLINE, container="gpuctl-engine")
    body = text.split("<<'GPUCTL_WATCHDOG_EOF'\n", 1)[1].split("\nGPUCTL_WATCHDOG_EOF\n", 1)[0]
    assert body + "\n" == watchdog
    assert templating.bootstrap_script(cache_dir="/var/lib/gpuctl/hf-cache").rstrip("\n") in text
    assert f"printf '%s\\n' {DEADLINE} > /etc/gpuctl/deadline" in text
    assert "HF_TOKEN" not in text and "API_KEY" not in text


def test_an_embedded_script_may_not_contain_its_heredoc_terminator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templating, "bootstrap_script", lambda **_: "echo hi\nGPUCTL_BOOTSTRAP_EOF\n")
    with pytest.raises(ValueError, match="heredoc terminator"):
        templating.aws_user_data(deadline=DEADLINE, container="c", cache_dir="/c")


# --- behaviour against fake tools --------------------------------------------------------------------

def fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)


def tools_dir(tmp_path: Path) -> Path:
    """A PATH directory with only the basic tools the scripts use (no docker, no NVIDIA tools)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in TOOLS:
        (tools / tool).symlink_to(shutil.which(tool))
    return tools


def run_script(tmp_path: Path, text: str, bin_dir: Path, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.sh"
    script.write_text(text, encoding="utf-8")
    env = {"PATH": f"{bin_dir}:{tools_dir(tmp_path)}", "LOG": str(tmp_path / "calls.log")}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=timeout)


def checks(output: str) -> dict[str, tuple[str, str]]:
    rows = [line.split("\t") for line in output.splitlines() if line.startswith("gpuctl-")]
    return {name: (status, detail) for _, name, status, detail in rows}


def docker_fake(runtimes: str = '{"runc":{}}') -> str:
    return f"""echo "docker $*" >> "$LOG"
case "$*" in
  *ServerVersion*) echo 28.1.1 ;;
  *Runtimes*) echo '{runtimes}' ;;
esac
"""


def test_bootstrap_creates_directories_and_registers_the_nvidia_runtime(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake(bin_dir, "docker", docker_fake())
    fake(bin_dir, "nvidia-ctk", 'echo "nvidia-ctk $*" >> "$LOG"\n')
    fake(bin_dir, "systemctl", 'echo "systemctl $*" >> "$LOG"\n')
    cache, config = tmp_path / "var" / "cache", tmp_path / "etc" / "gpuctl"
    result = run_script(tmp_path, templating.bootstrap_script(cache_dir=str(cache), config_dir=str(config)), bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    found = checks(result.stdout)
    assert {name: status for name, (status, _) in found.items()} == {
        "cache-dir": "ok", "config-dir": "ok", "docker-cli": "ok", "docker-daemon": "ok", "nvidia-runtime": "changed"}
    assert cache.is_dir() and config.stat().st_mode & 0o777 == 0o700
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert "nvidia-ctk runtime configure --runtime=docker" in calls
    assert "systemctl restart docker" in calls


def test_bootstrap_fails_without_docker_or_apt(tmp_path: Path) -> None:
    result = run_script(tmp_path, templating.bootstrap_script(cache_dir=str(tmp_path / "c"),
                                                              config_dir=str(tmp_path / "e")), tmp_path / "empty")
    assert result.returncode == 1
    assert checks(result.stdout)["docker-cli"][0] == "failed"


def watchdog_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    fake(bin_dir, "docker", 'echo "docker $*" >> "$LOG"\n')
    return bin_dir, {"PATH": f"{bin_dir}:{tools_dir(tmp_path)}", "LOG": str(tmp_path / "calls.log")}


def test_watchdog_stops_the_engine_and_powers_off_after_the_deadline(tmp_path: Path) -> None:
    _, env = watchdog_env(tmp_path)
    halted = tmp_path / "halted"
    script = templating.watchdog_script(deadline=int(time.time()) - 1, container="gpuctl-engine",
                                        deadline_file=str(tmp_path / "missing"), interval_s=1,
                                        shutdown_command=f"touch {halted}")
    (tmp_path / "wd.sh").write_text(script, encoding="utf-8")
    result = subprocess.run(["bash", str(tmp_path / "wd.sh")], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0
    assert halted.exists()
    assert (tmp_path / "calls.log").read_text().splitlines() == ["docker stop --time 30 gpuctl-engine"]
    assert "passed: stopping gpuctl-engine" in result.stdout


def test_watchdog_rereads_the_deadline_file(tmp_path: Path) -> None:
    _, env = watchdog_env(tmp_path)
    halted, deadline_file = tmp_path / "halted", tmp_path / "deadline"
    deadline_file.write_text(f"{int(time.time()) + 3600}\n", encoding="utf-8")
    script = templating.watchdog_script(deadline=int(time.time()) - 1, container="c", interval_s=1,
                                        deadline_file=str(deadline_file), shutdown_command=f"touch {halted}")
    (tmp_path / "wd.sh").write_text(script, encoding="utf-8")
    process = subprocess.Popen(["bash", str(tmp_path / "wd.sh")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        assert process.poll() is None and not halted.exists()  # the file extended the past fallback
        deadline_file.write_text("garbage\n", encoding="utf-8")
        time.sleep(1.2)
        assert process.poll() is None  # an unreadable file keeps the last good deadline
        deadline_file.write_text(f"{int(time.time()) - 5}\n", encoding="utf-8")
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert halted.exists()
    assert "ignoring deadline 'garbage'" in process.stdout.read()


def test_render_reads_the_shipped_file() -> None:
    text = render("watchdog.sh", {"DEADLINE_FILE": "/f", "FALLBACK_DEADLINE": 1, "CONTAINER_NAME": "c",
                                  "INTERVAL_SECONDS": 5, "SHUTDOWN_COMMAND": "poweroff", "BUDGET_DEADLINE": 0,
                                  "IDLE_SECONDS": 0, "METRICS_PORT": 0, "BUSY_METRICS": "", "REQUEST_METRICS": "",
                                  "ACTIVITY_FILE": "/dev/null"})
    assert "deadline=1\n" in text and "interval=5\n" in text and "shutdown_command=poweroff\n" in text
