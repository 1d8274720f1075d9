"""Domain errors. Each carries its exit code and a hint; ``gpuctl.__main__.main`` translates them once."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (docs/exit-codes.md)."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    NOT_FOUND = 3
    PROVIDER = 4
    NO_CAPACITY = 5
    CREDENTIALS = 6
    TIMEOUT = 7
    HEALTH = 8
    INTERRUPTED = 130


class GpuctlError(Exception):
    """Base of every error gpuctl reports to the user: one line of what failed, plus a hint."""

    exit_code: ExitCode = ExitCode.UNEXPECTED
    default_hint: str = "rerun with GPUCTL_DEBUG=1 for details"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def one_line(self) -> str:
        """The message and hint folded into the single line printed on stderr."""
        text = " ".join(self.message.split())
        return f"{text} (hint: {self.hint})" if self.hint else text


class UsageError(GpuctlError):
    exit_code = ExitCode.USAGE
    default_hint = "see 'gpuctl --help'"


class ConfigError(UsageError):
    """An invalid file the user controls (gpuctl.yaml, config, recipe): names file, field and problem."""

    default_hint = "fix the file and try again"


class UnsupportedError(UsageError):
    """Something asked of a provider that it does not declare it can do (``Provider.capabilities``)."""

    default_hint = "'gpuctl providers' shows what each provider can do"


class StateError(UsageError):
    """The state file cannot be read safely; it is never overwritten in that case."""

    default_hint = "inspect .gpuctl/state.json; gpuctl will not overwrite it"


class FileSystemError(UsageError):
    """A file or directory gpuctl needs cannot be read or written: names the path and the cause (exit 2)."""

    default_hint = "check the path and its permissions"

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str = "use") -> FileSystemError:
        """The one line for an OSError that carries a path: 'cannot read PATH: Permission denied'."""
        import errno

        path = exc.filename or "?"
        cause = exc.strerror or str(exc)
        hints = {
            errno.EACCES: f"check the permissions of {path} and its directories (ls -ld)",
            errno.EPERM: f"check the permissions of {path} and its directories (ls -ld)",
            errno.EISDIR: f"{path} should be a file, not a directory: move it away",
            errno.ENOTDIR: "a part of that path is a file where a directory should be: move it away",
            errno.EEXIST: f"{path} is in the way: move it away",
            errno.ENOSPC: "free some space on that disk",
            errno.EROFS: "that file system is read-only: use another project directory (--project-dir)",
            errno.ENOENT: "check that the path exists",
        }
        return cls(f"cannot {doing} {path}: {cause}", hints.get(exc.errno or 0, cls.default_hint))


class NotFoundError(GpuctlError):
    exit_code = ExitCode.NOT_FOUND
    default_hint = "check the name for typos"


class ProviderError(GpuctlError):
    exit_code = ExitCode.PROVIDER
    default_hint = "the provider's API failed; try again, or rerun with GPUCTL_DEBUG=1"


class NoCapacityError(GpuctlError):
    exit_code = ExitCode.NO_CAPACITY
    default_hint = "try another GPU, region or provider ('gpuctl prices' lists what is available)"


class CredentialsError(GpuctlError):
    exit_code = ExitCode.CREDENTIALS
    default_hint = "set the credentials ('gpuctl providers' shows what is missing)"


class TimeoutError_(GpuctlError):
    exit_code = ExitCode.TIMEOUT
    default_hint = "raise the timeout or try again"


class HealthCheckError(GpuctlError):
    exit_code = ExitCode.HEALTH
    default_hint = "look at 'gpuctl logs NAME'"


class Interrupted(GpuctlError):
    exit_code = ExitCode.INTERRUPTED
    default_hint = ""

    def __init__(self, message: str = "interrupted", hint: str | None = None) -> None:
        super().__init__(message, hint)


class Declined(Interrupted):
    """The user answered no at a confirmation: nothing was done (exit 130, as an interrupt or the wizard's Esc)."""

    def __init__(self, message: str = "not done: the answer was no", hint: str | None = "nothing was changed") -> None:
        super().__init__(message, hint)
