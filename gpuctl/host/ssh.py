"""SSH sessions to a GPU host (paramiko): connect the way ``ssh`` would, run, stream, upload, forward.

A connection honours ``~/.ssh/config`` (HostName, User, Port, IdentityFile, IdentitiesOnly,
ProxyCommand, UserKnownHostsFile, StrictHostKeyChecking), the ssh agent, explicit identity files and
the project's own key, and verifies the host key as described in :mod:`gpuctl.host.hostkeys`.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import uuid4

from gpuctl.errors import CredentialsError, GpuctlError, TimeoutError_
from gpuctl.host.errors import HostError, UnknownHostKeyError
from gpuctl.host.hostkeys import (
    PinningPolicy,
    accepts_new_keys,
    changed_key_error,
    known_hosts_name,
    load_known_hosts,
    pinned_known_hosts,
)
from gpuctl.host.keys import KEY_FILE, SSH_DIR
from gpuctl.host.shell import CommandResult, decode, quote_argv
from gpuctl.host.sshconfig import SshOptions, resolve_ssh_options
from gpuctl.host.target import HostTarget

_KEEPALIVE_S = 30
#: how paramiko says that it had no key (nor agent, nor password) to offer
_NO_AUTH_METHODS = "No authentication methods available"


class IdentityFileError(CredentialsError):
    """A key file named for the login is not a private key gpuctl can use: waiting will not fix it."""

    default_hint = ("pass a private key file (not the .pub) with --identity KEYFILE, or fix IdentityFile in "
                    "~/.ssh/config")


def check_private_key(path: Path) -> None:
    """Raise IdentityFileError unless ``path`` holds a private key (an encrypted one counts: the agent may hold it)."""
    import paramiko

    try:
        paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        return
    except (paramiko.SSHException, ValueError, UnicodeDecodeError) as exc:
        raise IdentityFileError(f"{path} is not a private key ({exc})") from exc
    except OSError as exc:
        raise IdentityFileError(f"cannot read the key file {path}: {exc.strerror or exc}") from exc


class SshSession:
    """One authenticated SSH connection; implements :class:`gpuctl.host.shell.Shell`."""

    def __init__(self, client: Any, options: SshOptions) -> None:
        self.client = client
        self.options = options
        self._sftp: Any = None

    @property
    def where(self) -> str:
        return f"{self.options.user}@{self.options.hostname}:{self.options.port}"

    # -- commands ------------------------------------------------------------------------------
    def run(self, argv: Sequence[str] | str, *, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        """Run a command (argv is quoted for the remote shell) and collect its exit status and output."""
        command = argv if isinstance(argv, str) else quote_argv(argv)
        deadline = time.monotonic() + timeout
        channel = self._open_channel(command)
        try:
            if input is not None:
                channel.sendall(input)
            channel.shutdown_write()
            late = f"'{command}' did not finish within {timeout:g}s on {self.where}"
            stdout, stderr = _collect(channel, deadline, late)
            exit_code = channel.recv_exit_status()
        finally:
            channel.close()
        argv_list = [command] if isinstance(argv, str) else list(argv)
        return CommandResult(argv=argv_list, exit_code=exit_code, stdout=decode(stdout), stderr=decode(stderr))

    def stream(self, argv: Sequence[str]) -> Generator[str, None, None]:
        """Lines of a long-running command (``docker logs -f``) as they arrive.

        The command runs on a pseudo-terminal so that closing the iterator hangs it up (SIGHUP) on the
        host instead of leaving it running until its next write; a pty merges stdout and stderr.
        """
        channel = self.client.get_transport().open_session()
        try:
            channel.get_pty(term="dumb", width=1000)
            channel.exec_command(quote_argv(argv))
            pending = b""
            while data := channel.recv(65536):
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield decode(line).rstrip("\r")
            if pending:
                yield decode(pending).rstrip("\r")
        finally:
            channel.close()

    def dial(self, argv: Sequence[str]) -> ChannelDialer:
        """Streams to ``argv`` on the host, each an exec channel of this connection (no new SSH login)."""
        return ChannelDialer(self, quote_argv(argv))

    def _open_channel(self, command: str) -> Any:
        import paramiko

        try:
            channel = self.client.get_transport().open_session(timeout=30)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostError(f"lost the SSH connection to {self.where}: {exc}") from exc
        return channel

    # -- files ---------------------------------------------------------------------------------
    def upload(self, path: str, data: bytes, mode: int = 0o600) -> str:
        """Write ``data`` to ``path`` (relative paths are under the login home) with ``mode``; atomic.

        The file is created exclusively under a temporary name and given ``mode`` before any byte of
        ``data`` is written, then renamed into place, so no one ever reads it with looser permissions.
        """
        sftp = self.sftp()
        target = PurePosixPath(sftp.normalize(str(PurePosixPath(path).parent))) / PurePosixPath(path).name
        tmp = f"{target}.{uuid4().hex[:8]}.tmp"
        try:
            with sftp.open(tmp, "wbx") as handle:
                handle.chmod(mode)
                handle.write(data)
            sftp.posix_rename(tmp, str(target))
        except OSError as exc:
            self._remove_quietly(tmp)
            raise HostError(f"cannot write {target} on {self.where}: {exc}") from exc
        return str(target)

    def upload_file(self, local: Path, path: str, mode: int = 0o600) -> str:
        return self.upload(path, local.read_bytes(), mode)

    def read_file(self, path: str) -> bytes:
        with self.sftp().open(path, "rb") as handle:
            return handle.read()

    def file_mode(self, path: str) -> int:
        """Permission bits of a remote file (e.g. 0o600)."""
        return self.sftp().stat(path).st_mode & 0o7777

    def _remove_quietly(self, path: str) -> None:
        with suppress(OSError):
            self.sftp().remove(path)

    def sftp(self) -> Any:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    # -- tunnels -------------------------------------------------------------------------------
    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> AbstractContextManager[int]:
        """Forward a local port on 127.0.0.1 to ``remote_host:remote_port`` as seen from the host.

        Use as ``with session.forward(8000) as port:``; the engine stays bound to the host's loopback.
        """
        from gpuctl.host.tunnel import forward_local

        return forward_local(self.client.get_transport(), remote_host, remote_port)

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self.client.close()

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChannelDialer:
    """Streams to one command on the host, each an exec channel of an open :class:`SshSession`.

    A paramiko channel is socket-like enough for an HTTP connection (``docker system dial-stdio``).
    """

    ssh_channels = True

    def __init__(self, session: SshSession, command: str) -> None:
        self.session = session
        self.command = command
        self._lock = threading.Lock()
        self._channels: list[Any] = []

    def open(self, timeout: float | None) -> Any:
        channel = self.session._open_channel(self.command)
        channel.settimeout(timeout)
        with self._lock:
            self._channels = [c for c in self._channels if not c.closed]
            self._channels.append(channel)
        return channel

    def failure(self) -> str | None:
        with self._lock:
            channel = self._channels[-1] if self._channels else None
        if channel is None or not channel.status_event.wait(2):
            return None
        stderr = b""
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(65536)
        lines = [line.strip() for line in decode(stderr).splitlines() if line.strip()]
        return f"exit {channel.recv_exit_status()}" + (f": {lines[-1]}" if lines else "")

    def close(self) -> None:
        with self._lock:
            channels, self._channels = self._channels, []
        for channel in channels:
            channel.close()


def _collect(channel: Any, deadline: float, timeout_message: str) -> tuple[bytes, bytes]:
    stdout: list[bytes] = []
    stderr: list[bytes] = []

    def drain() -> None:
        while channel.recv_ready():
            stdout.append(channel.recv(65536))
        while channel.recv_stderr_ready():
            stderr.append(channel.recv_stderr(65536))

    while True:
        drain()
        if channel.eof_received or channel.closed:
            drain()  # nothing arrives after EOF; the exit status may still be on its way
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                break
            return b"".join(stdout), b"".join(stderr)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        select.select([channel], [], [], remaining)
    raise TimeoutError_(timeout_message)


def connect(
    options: SshOptions,
    *,
    pinned_file: Path,
    identity_files: Sequence[Path] = (),
    accept_host_key: bool = False,
    timeout: float = 15.0,
) -> SshSession:
    """Open an authenticated, host-key-verified SSH session.

    Raises UnknownHostKeyError (exit 2) for a host no known_hosts file lists unless accepting,
    HostKeyChangedError (6) for a changed key, CredentialsError (6) when no key is accepted and
    HostError (4) when the host cannot be reached.
    """
    import paramiko

    client = paramiko.SSHClient()
    load_known_hosts(client, options.user_known_hosts_files, pinned_file)
    accept = accept_host_key or accepts_new_keys(options.strict_host_key_checking)
    client.set_missing_host_key_policy(PinningPolicy(pinned_file, accept))
    keys = [str(p) for p in (*identity_files, *options.identity_files) if p.is_file()]
    for key in keys:
        check_private_key(Path(key))
    where = f"{options.user}@{options.hostname}:{options.port}"
    try:
        client.connect(
            options.hostname, port=options.port, username=options.user, key_filename=keys or None,
            allow_agent=not options.identities_only, look_for_keys=not options.identities_only,
            timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
            sock=paramiko.ProxyCommand(options.proxy_command) if options.proxy_command else None,
        )
    except UnknownHostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise changed_key_error(known_hosts_name(options.hostname, options.port), exc) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        raise CredentialsError(
            f"SSH login to {where} failed: {exc}",
            "check the user and that one of your keys (--identity, ssh agent, IdentityFile in ~/.ssh/config, "
            f"{SSH_DIR}/{KEY_FILE} of the project) is in the host's authorized_keys",
        ) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        if _NO_AUTH_METHODS in str(exc):  # paramiko's word for "no key to offer": no --identity, agent, ~/.ssh key
            raise CredentialsError(f"SSH login to {where} failed: no key to offer",
                                   "pass the private key the host accepts with --identity KEYFILE (or load it into "
                                   "the ssh agent, or name it as IdentityFile in ~/.ssh/config)") from exc
        raise HostError(f"cannot reach {where} over SSH: {exc or exc.__class__.__name__}") from exc
    client.get_transport().set_keepalive(_KEEPALIVE_S)
    return SshSession(client, options)


def open_session(
    target: HostTarget,
    state_dir: Path,
    *,
    identity: Path | None = None,
    accept_host_key: bool = False,
    timeout: float = 15.0,
    config_path: Path | None = None,
) -> SshSession:
    """Connect to a ``--host`` target with the project's pinned keys and its key pair (if any)."""
    options = resolve_ssh_options(target, config_path)
    project_key = state_dir / SSH_DIR / KEY_FILE
    identities = [p for p in (identity, project_key) if p is not None]
    if identity is not None and not identity.is_file():
        raise IdentityFileError(f"identity file {identity} does not exist", "fix --identity")
    return connect(options, pinned_file=pinned_known_hosts(state_dir), identity_files=identities,
                   accept_host_key=accept_host_key, timeout=timeout)


def wait_for_ssh(connect_once: Callable[[], SshSession], timeout: float, interval: float = 2.0) -> SshSession:
    """Retry ``connect_once`` until it succeeds or ``timeout`` seconds pass (TimeoutError_, exit 7).

    A booting host refuses connections, or rejects the key until cloud-init installs it; both are
    retried. Host-key problems are not: they will not go away by waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect_once()
        except IdentityFileError:
            raise
        except (HostError, CredentialsError) as exc:
            last: GpuctlError = exc
        if time.monotonic() + interval > deadline:
            raise TimeoutError_(f"SSH did not come up within {timeout:g}s: {last.message}",
                                "the host may still be booting; try again, or check it in the provider's console")
        time.sleep(interval)


def openssh_argv(
    options: SshOptions, *, identity_files: Sequence[Path], pinned_file: Path, command: Sequence[str] = ()
) -> list[str]:
    """The ``ssh`` command line for an interactive session (``gpuctl ssh NAME``) with the same trust rules."""
    known = " ".join(str(p) for p in (*options.user_known_hosts_files, pinned_file))
    argv = ["ssh", "-p", str(options.port), "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes"]
    for path in identity_files:
        if path.is_file():
            argv += ["-i", str(path)]
    # the alias, not the resolved HostName: ssh then applies the rest of ~/.ssh/config (ProxyCommand...)
    argv += ["-l", options.user, options.alias]
    if command:
        argv += ["--", quote_argv(command)]
    return argv
