"""A fake GPU host on this machine: its own network, sshd, dockerd, registry mirror and nvidia-smi.

Layout of one host (index N, workdir H):

* network namespace ``gpuctl-fh-N``, a veth pair 10.200.N.1 (this side) / 10.200.N.2 (the host), no
  default route: nothing inside can reach beyond this machine;
* a private mount namespace (held by one ``sleep`` process) in which ``/run`` is a fresh tmpfs and
  ``/root``, ``/etc/gpuctl``, ``/var/lib/gpuctl`` and ``/lambda`` are the host's own directories under H,
  so what gpuctl writes "on the host" lands in H, and several hosts never share a file (``mount``
  attaches a directory that outlives the host, as a cloud's network filesystem);
* sshd on 10.200.N.2:22 (ed25519 host key made per host, root logs in with the session's client key,
  ``SetEnv PATH`` puts the fake ``nvidia-smi`` first);
* dockerd with the default socket ``/run/docker.sock`` inside (plus ``H/docker.sock`` for the tests),
  a fake ``nvidia-container-runtime-hook`` on its PATH so ``--gpus all`` works (it shows the container
  the host's GPU table, as the real one shows it the driver), and
  ``--registry-mirror`` pointing at a ``docker-registry`` on 127.0.0.1:5000 inside the namespace that
  holds the fake engine image under vLLM's and SGLang's image names;
* a stand-in Hugging Face hub (``hub``, tests/standins/hub_server.py) on 10.200.N.1, this side of the
  veth pair, serving a tiny model for any repo: point ``HF_ENDPOINT`` at ``hub.url`` and ``gpuctl up``
  fetches the weights from it, both here (the file list) and on the host (the download).

Every daemon is started in its own session and stopped by PID; nothing outside the namespaces is
touched (iptables rules and ip_forward of this machine stay as they were). Needs root and the
packages of ``install-packages.sh``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.fakehost.image import (
    ENGINE_IMAGE,
    ENGINE_IMAGES,
    PYTHON_IMAGE,
    build_rootfs,
    copy_registry,
    write_registry,
)
from tests.standins.hub_server import HubServer

if TYPE_CHECKING:
    from gpuctl.host.watchdogs import Watchdog

HERE = Path(__file__).resolve().parent
NS_PREFIX = "gpuctl-fh-"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: host paths replaced by per-host directories inside the host's mount namespace (name under H)
PRIVATE_PATHS = {"/root": "home", "/etc/gpuctl": "etc-gpuctl", "/var/lib/gpuctl": "var-lib-gpuctl",
                 "/lambda": "lambda"}  # where Lambda mounts filesystems (see ``mount``)
REQUIRED = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux", "dockerd": "docker.io",
            "containerd": "docker.io", "runc": "docker.io", "docker": "docker.io",
            "docker-registry": "docker-registry", "sshd": "openssh-server", "ssh": "openssh-client",
            "awk": "mawk"}
DRIVER_VERSION = "550.54.15"
_START_TIMEOUT_S = 20.0


class FakeHostUnavailable(RuntimeError):
    """This machine cannot run fake hosts (not root, packages missing, no namespaces)."""


def missing_prerequisites() -> str | None:
    """Why fake hosts cannot run here, or None."""
    if os.geteuid() != 0:
        return "fake GPU hosts need root (network namespaces, dockerd)"
    path = f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}"
    missing = sorted({f"{tool} ({package})" for tool, package in REQUIRED.items()
                      if shutil.which(tool, path=path) is None})
    if missing:
        return f"missing {', '.join(missing)}: run tests/fakehost/install-packages.sh"
    return None


@dataclass(frozen=True)
class FakeGpu:
    """One GPU as the fake nvidia-smi reports it; a value may be '[N/A]'."""

    name: str = "NVIDIA L40S"
    memory_total_mib: int | str = 46068
    memory_used_mib: int | str = 0
    utilization_pct: int | str = 0


@dataclass
class _Daemon:
    name: str
    process: subprocess.Popen
    log: Path


@dataclass
class FakeGpuHost:
    """One fake GPU host. ``start()`` takes about a second; ``stop()`` removes every trace."""

    workdir: Path
    client_public_key: str
    registry_seed: Path
    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    index: int = 0
    #: the host's stand-in hub, started with the host
    hub: HubServer | None = field(default=None, repr=False)
    _daemons: dict[str, _Daemon] = field(default_factory=dict, repr=False)
    _holder: subprocess.Popen | None = field(default=None, repr=False)
    _netns_created: bool = field(default=False, repr=False)

    # -- addresses and handles ----------------------------------------------------------------------
    @property
    def netns(self) -> str:
        return f"{NS_PREFIX}{self.index}"

    @property
    def address(self) -> str:
        """The host's address, reachable from this machine (and only from it)."""
        return f"10.200.{self.index}.2"

    port = 22
    user = "root"

    @property
    def target(self) -> str:
        """``user@addr`` as ``gpuctl up --host`` takes it."""
        return f"{self.user}@{self.address}"

    @property
    def home(self) -> Path:
        """What the host sees as /root."""
        return self.workdir / PRIVATE_PATHS["/root"]

    def private_path(self, host_path: str) -> Path:
        """Where a file the host sees at ``host_path`` (under /root, /etc/gpuctl, /var/lib/gpuctl) really is."""
        for prefix, name in PRIVATE_PATHS.items():
            if host_path == prefix or host_path.startswith(prefix + "/"):
                return self.workdir / name / host_path[len(prefix):].lstrip("/")
        raise ValueError(f"{host_path} is not private to the fake host")

    @property
    def docker_socket(self) -> Path:
        return self.workdir / "docker.sock"

    @property
    def docker_env(self) -> dict[str, str]:
        """Environment that aims a docker CLI on this machine at the host's engine."""
        return {"DOCKER_HOST": f"unix://{self.docker_socket}"}

    @property
    def host_key_path(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def host_public_key(self) -> str:
        """``ssh-ed25519 AAAA...`` of the host."""
        return " ".join(self.host_key_path.with_suffix(".pub").read_text().split()[:2])

    @property
    def known_hosts_line(self) -> str:
        return f"{self.address} {self.host_public_key}"

    @property
    def bin_dir(self) -> Path:
        return self.workdir / "bin"

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FakeGpuHost:
        problem = missing_prerequisites()
        if problem:
            raise FakeHostUnavailable(problem)
        try:
            self._claim_network()
            self.hub = HubServer(host=f"10.200.{self.index}.1", auto=True).start()
            self._prepare_files()
            self._start_holder()
            self._start_daemons()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove the containers, stop every process of the host by PID, delete the namespace and files."""
        if self.docker_socket.exists() and "dockerd" in self._daemons:
            ids = self.docker("ps", "-aq", check=False, timeout=10).stdout.split()
            if ids:
                self.docker("rm", "--force", *ids, check=False, timeout=30)
        # The host is thrown away with its data-root and mount namespace: once the containers are gone,
        # killing dockerd loses nothing, and its graceful shutdown would cost a second per host.
        dockerd = self._daemons.pop("dockerd", None)
        if dockerd is not None and dockerd.process.poll() is None:
            dockerd.process.kill()
            dockerd.process.wait(timeout=10)
        _terminate(*(daemon.process for daemon in self._daemons.values()))
        self._daemons.clear()
        holder_pid = self._holder.pid if self._holder is not None else None
        stray = [pid for pid, _ in self.processes() if pid != holder_pid]
        for pid in stray:  # containerd, shims, what sessions left behind (a 'docker logs -f')
            _kill_pid(pid)
        deadline = time.monotonic() + 10
        while any(map(is_running, stray)) and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._holder is not None:
            _terminate(self._holder)
            self._holder = None
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
        if self._netns_created:
            # deleting one end removes the pair at once; the namespace itself is freed asynchronously
            subprocess.run(["ip", "link", "delete", f"gfh{self.index}r"], check=False, capture_output=True)
            subprocess.run(["ip", "netns", "delete", self.netns], check=False, capture_output=True)
            self._netns_created = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeGpuHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test knobs ---------------------------------------------------------------------------------
    def set_gpus(self, gpus: list[FakeGpu]) -> None:
        """What nvidia-smi reports from now on."""
        self.gpus = list(gpus)
        rows = "".join(f"{g.name}\t{g.memory_total_mib}\t{g.memory_used_mib}\t{g.utilization_pct}\t"
                       f"GPU-{self.index:04d}{i:04d}-fake\n" for i, g in enumerate(self.gpus))
        (self.bin_dir / "gpus.tsv").write_text(rows)

    def fail_nvidia_smi(self, exit_code: int, message: str) -> None:
        """Make nvidia-smi print ``message`` and exit ``exit_code`` (9: no driver) until ``heal_nvidia_smi``."""
        (self.bin_dir / "nvidia-smi.fail").write_text(f"{exit_code}\n{message}\n")

    def heal_nvidia_smi(self) -> None:
        (self.bin_dir / "nvidia-smi.fail").unlink(missing_ok=True)

    def remove_nvidia_runtime(self) -> None:
        """Take away the NVIDIA Container Toolkit's hook, and put an ``nvidia-ctk`` that would register it and
        records in ``bin/nvidia-ctk.calls`` every time it is run (what a bootstrap would do)."""
        (self.bin_dir / "nvidia-container-runtime-hook").unlink()
        ctk = self.bin_dir / "nvidia-ctk"
        ctk.write_text(f'#!/bin/sh\necho "$*" >> {self.bin_dir / "nvidia-ctk.calls"}\n')
        ctk.chmod(0o755)

    def install_vllm_router(self) -> Path:
        """Put a ``vllm-router`` console script on the host, as pip writes one with an ``env`` interpreter line,
        running the vllm-router installed in this test run's Python; ``uninstall_vllm_router`` takes it away.

        That Python's packages may live under /root, which the host replaces with its own home: the script
        reaches them through this process's root (``/proc/PID/root``), which sees this machine's mounts.
        """
        import sys

        site = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "vllm_router").is_dir())
        script = self.bin_dir / "vllm-router"
        script.write_text(f"#!/usr/bin/env PYTHONPATH=/proc/{os.getpid()}/root{site} /usr/bin/python3\n"
                          "from vllm_router.launch_router import main\nmain()\n")
        script.chmod(0o755)
        return script

    def uninstall_vllm_router(self) -> None:
        (self.bin_dir / "vllm-router").unlink(missing_ok=True)

    def rotate_host_key(self) -> None:
        """Give the host a new key (as a rebuilt machine would have) and restart sshd."""
        _terminate(self._daemons.pop("sshd").process)
        self.host_key_path.unlink()
        self.host_key_path.with_suffix(".pub").unlink()
        _write_keypair(self.host_key_path, f"root@{self.netns}")
        self._start_sshd()
        _wait_for(lambda: _ssh_banner(self.address, self.port), "sshd after the key change", self._daemons)

    def mount(self, source: Path, path: str) -> None:
        """Make the directory ``source`` of this machine the host's ``path`` (under a private path, e.g.
        /lambda/nfs/NAME), as a network filesystem attached to a VM appears there: a bind mount in the
        host's mount namespace only."""
        self.private_path(path).mkdir(parents=True, exist_ok=True)
        result = self.run_inside(["mount", "--bind", str(source), path])
        if result.returncode != 0:
            raise RuntimeError(f"mounting {source} at {path} on {self.netns} failed: {result.stderr.strip()}")

    def unmount(self, path: str) -> None:
        """Undo ``mount`` (the filesystem's content stays in its directory)."""
        self.run_inside(["umount", path])

    def reach_hub_of(self, other: FakeGpuHost) -> None:
        """Let this host fetch weights from ``other``'s stand-in hub. That hub listens on this machine's side
        of ``other``'s veth pair, an address local to this machine: a host route to it over this host's own
        veth is delivered locally (nothing is forwarded), and the answer comes back the same way."""
        if other is self:
            return
        subprocess.run(["ip", "-n", self.netns, "route", "add", f"10.200.{other.index}.1/32", "dev",
                        f"gfh{self.index}h"], check=True, capture_output=True)

    def preload(self, image: str) -> None:
        """Make ``image`` (e.g. TGI's, which lives on ghcr.io where no mirror reaches) the fake engine image."""
        if self.docker("image", "inspect", ENGINE_IMAGE, check=False).returncode != 0:
            self.docker("pull", "-q", ENGINE_IMAGE)
        self.docker("tag", ENGINE_IMAGE, image)

    # -- inspection ---------------------------------------------------------------------------------
    def docker(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run this machine's docker CLI against the host's engine."""
        return subprocess.run(["docker", *args], env={**os.environ, **self.docker_env}, capture_output=True,
                              text=True, check=check, timeout=timeout)

    def containers(self) -> list[str]:
        """``NAME STATE`` of every container on the host, running or not, sorted."""
        return sorted(self.docker("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.splitlines())

    def run_inside(self, argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command in the host's network and mount namespaces, as root on the host."""
        return subprocess.run(self._nsenter() + argv, capture_output=True, text=True, timeout=timeout,
                              env=self._daemon_env())

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process running on the host: those in its mount namespace and
        their descendants (container processes live in namespaces of their own)."""
        anchors = [p.pid for p in (self._holder, *(d.process for d in self._daemons.values())) if p is not None]
        wanted = next((ns for ns in map(_namespace_id, anchors) if ns is not None), None)
        if wanted is None:
            return []
        parents: dict[int, int] = {}
        on_host: set[int] = set()
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                pid = int(entry.name)
                parents[pid] = _parent_pid(pid)
                if _namespace_id(pid) == wanted:
                    on_host.add(pid)
        found = []
        for pid in parents:
            ancestor, seen = pid, 0
            while ancestor > 1 and ancestor not in on_host and seen < 64:
                ancestor, seen = parents.get(ancestor, 0), seen + 1
            if ancestor in on_host:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found.append((pid, cmdline.decode(errors="replace").strip()))
        return found

    def own(self, watchdogs: list[Watchdog]) -> list[Watchdog]:
        """Those of ``watchdogs`` (found by gpuctl.host.watchdogs) that run on this host: the fake host has no
        pid namespace, so a search of its /proc also sees the watchdogs of other tests on this machine."""
        pids = {pid for pid, _ in self.processes()}
        return [w for w in watchdogs if w.pid in pids]

    def log(self, daemon: str) -> str:
        """The output of one of the host's daemons (dockerd, sshd, registry)."""
        return self._daemons[daemon].log.read_text(errors="replace") if daemon in self._daemons else ""

    # -- setup steps --------------------------------------------------------------------------------
    def _prepare_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in PRIVATE_PATHS.values():
            (self.workdir / name).mkdir(mode=0o700, exist_ok=True)
        for mountpoint in PRIVATE_PATHS:
            Path(mountpoint).mkdir(parents=True, exist_ok=True)  # empty mountpoints on this machine
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(self.client_public_key.strip() + "\n")
        self.bin_dir.mkdir()
        shutil.copy2(HERE / "nvidia-smi", self.bin_dir / "nvidia-smi")
        shutil.copy2(HERE / "nvidia-container-runtime-hook", self.bin_dir / "nvidia-container-runtime-hook")
        (self.bin_dir / "driver-version").write_text(DRIVER_VERSION + "\n")
        self.set_gpus(self.gpus)
        _write_keypair(self.host_key_path, f"root@{self.netns}")
        copy_registry(self.registry_seed, self.workdir / "registry")
        (self.workdir / "registry.yml").write_text(
            "version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.workdir / 'registry'}}}, delete: {{enabled: true}}}}\n"
            "http: {addr: ':5000'}\n")
        (self.workdir / "sshd_config").write_text(_SSHD_CONFIG.format(
            host_key=self.host_key_path, path=f"{self.bin_dir}:{SYSTEM_PATH}"))

    def _claim_network(self) -> None:
        # 'ip netns add' fails when the name exists, so it claims an index atomically across processes
        start = (os.getpid() % 200) + 20
        for offset in range(230):
            index = (start + offset) % 250 + 1
            if Path(f"/sys/class/net/gfh{index}r").exists():
                continue
            if subprocess.run(["ip", "netns", "add", f"{NS_PREFIX}{index}"], capture_output=True).returncode == 0:
                self.index = index
                self._netns_created = True
                break
        else:
            raise FakeHostUnavailable("no free 10.200.N.0/24 network for a fake host")
        outside, inside = f"gfh{self.index}r", f"gfh{self.index}h"
        for argv in (
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", self.netns],
            ["ip", "addr", "add", f"10.200.{self.index}.1/24", "dev", outside],
            ["ip", "link", "set", outside, "up"],
            ["ip", "-n", self.netns, "addr", "add", f"{self.address}/24", "dev", inside],
            ["ip", "-n", self.netns, "link", "set", inside, "up"],
            ["ip", "-n", self.netns, "link", "set", "lo", "up"],
        ):
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                raise FakeHostUnavailable(f"{' '.join(argv)} failed: {result.stderr.strip()}")

    def _start_holder(self) -> None:
        ready = self.workdir / "mounts.ready"
        mounts = " && ".join(
            ["mount -t tmpfs -o mode=0755 tmpfs /run", "mkdir -p /run/sshd"]
            + [f"mount --bind {self.workdir / name} {path}" for path, name in PRIVATE_PATHS.items()]
            + [f"touch {ready}", "exec sleep infinity"])
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mounts],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "mounts.log").open("wb"))
        _wait_for(ready.exists, "the host's mount namespace", {}, holder=self._holder)

    def _nsenter(self) -> list[str]:
        assert self._holder is not None
        return ["nsenter", f"--net=/run/netns/{self.netns}", f"--mount=/proc/{self._holder.pid}/ns/mnt", "--"]

    def _daemon_env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin_dir}:{SYSTEM_PATH}", "HOME": "/root", "LANG": "C.UTF-8"}

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(self._nsenter() + argv, start_new_session=True, env=self._daemon_env(),
                                   stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self._daemons[name] = _Daemon(name, process, log)

    def _start_sshd(self) -> None:
        self._spawn("sshd", [shutil.which("sshd", path=SYSTEM_PATH) or "/usr/sbin/sshd", "-D", "-e",
                             "-f", str(self.workdir / "sshd_config")])

    def _start_daemons(self) -> None:
        self._spawn("registry", ["docker-registry", "serve", str(self.workdir / "registry.yml")])
        self._spawn("dockerd", [
            "dockerd", "--data-root", str(self.workdir / "docker"), "--pidfile", "/run/docker.pid",
            "-H", "unix:///run/docker.sock", "-H", f"unix://{self.docker_socket}",
            "--registry-mirror", "http://127.0.0.1:5000", "--shutdown-timeout", "2", "--log-level", "warn",
        ])
        self._start_sshd()

    def _wait_ready(self) -> None:
        _wait_for(lambda: _ssh_banner(self.address, self.port), "sshd", self._daemons)
        _wait_for(lambda: _http_ok(self.address, 5000, "/v2/"), "the registry", self._daemons)
        _wait_for(self._dockerd_answers, "dockerd", self._daemons)

    def _dockerd_answers(self) -> bool:
        # a dockerd still initialising can accept the connection and answer late: that is "not yet", and the
        # overall start deadline decides
        try:
            return self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False


_SSHD_CONFIG = """\
# sshd of a fake GPU host (tests/fakehost/host.py)
ListenAddress 0.0.0.0:22
HostKey {host_key}
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
AllowTcpForwarding yes
Subsystem sftp internal-sftp
SetEnv PATH={path}
LogLevel VERBOSE
"""


def _write_keypair(path: Path, comment: str) -> str:
    """An ed25519 key pair in OpenSSH format (private 0600); returns the public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}"
    path.with_suffix(".pub").write_text(line + "\n")
    return line


def write_client_key(path: Path) -> str:
    """The test session's SSH client key (what a user's ~/.ssh/id_ed25519 would be); returns the public line."""
    return _write_keypair(path, "gpuctl-tests")


def _namespace_id(pid: int) -> tuple[int, int] | None:
    try:
        info = os.stat(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None
    return info.st_dev, info.st_ino


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _parent_pid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # the command name in parentheses may hold spaces


def _terminate(*processes: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM all at once, then wait; SIGKILL what lingers."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def _kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _ssh_banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def _http_ok(address: str, port: int, path: str) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            status = sock.recv(64).split(b" ", 2)
    except OSError:
        return False
    return len(status) > 1 and status[0].startswith(b"HTTP/1.") and status[1] == b"200"


def _wait_for(check: Callable[[], bool], what: str, daemons: dict[str, _Daemon],
              holder: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not check():
        dead = [d for d in daemons.values() if d.process.poll() is not None]
        if dead or (holder is not None and holder.poll() is not None):
            logs = "; ".join(f"{d.name}: {d.log.read_text(errors='replace')[-500:]}" for d in dead)
            raise FakeHostUnavailable(f"{what} did not start ({logs or 'the namespace holder died'})")
        if time.monotonic() > deadline:
            raise FakeHostUnavailable(f"{what} not ready after {_START_TIMEOUT_S:.0f}s")
        time.sleep(0.05)


@dataclass(frozen=True)
class FakeHostEnv:
    """What all fake hosts of a test session share: the engine image's registry and the client key."""

    workdir: Path
    client_key: Path
    client_public_key: str
    registry_seed: Path
    image: str = ENGINE_IMAGE

    def new_host(self, gpus: list[FakeGpu] | None = None) -> FakeGpuHost:
        """A host, not started yet."""
        return FakeGpuHost(workdir=self.workdir / f"host{next(_host_numbers)}",
                           client_public_key=self.client_public_key, registry_seed=self.registry_seed,
                           gpus=gpus or [FakeGpu()])


_host_numbers = itertools.count()


def prepare_env(workdir: Path) -> FakeHostEnv:
    """Build what every host of a session shares (about 1 s): the engine image's registry, a client key."""
    client_key = workdir / "client_ed25519"
    public = write_client_key(client_key)
    rootfs = build_rootfs(workdir / "rootfs.tar")
    for image, entrypoint in ENGINE_IMAGES.items():
        write_registry(workdir / "registry-seed", rootfs, image, entrypoint=entrypoint)
    write_registry(workdir / "registry-seed", rootfs, PYTHON_IMAGE, cmd=["python3"])
    rootfs.unlink()  # the registry holds its own copy of the layer
    return FakeHostEnv(workdir=workdir, client_key=client_key, client_public_key=public,
                       registry_seed=workdir / "registry-seed")
