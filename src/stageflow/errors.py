"""The error tree and the documented exit codes.

Every failure the tool expects is a :class:`StageflowError` carrying a one-line message and an
optional hint; ``cli.main`` prints it as ``stageflow: error: <message> (<hint>)`` and exits with the
error's :class:`ExitCode`. Anything else is a bug and exits 1.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    UNEXPECTED = 1  # a bug, or a check found a problem (drift, smoke, load)
    USAGE = 2  # usage or configuration error; nothing was changed
    ENVIRONMENT = 3  # terraform, Docker engine, AWS, credentials, missing binary
    REJECTED = 4  # the release was rejected: a gate failed, traffic is back on the stable version
    ROLLBACK_FAILED = 5  # rollback failed: page a person
    LOCKED = 6  # another deployment holds the environment lock
    SECURITY_GATE = 7  # the security gate found problems; the pipeline stopped before any change
    INTERRUPTED = 130


EXIT_CODE_HELP = {
    ExitCode.OK: "done",
    ExitCode.UNEXPECTED: "unexpected error (a bug), or a check found a problem (drift, smoke, load)",
    ExitCode.USAGE: "usage or configuration error; nothing was changed",
    ExitCode.ENVIRONMENT: "environment or infrastructure failure (terraform, Docker, AWS, credentials)",
    ExitCode.REJECTED: "release rejected: a gate failed and traffic is back on the stable version",
    ExitCode.ROLLBACK_FAILED: "rollback failed: page a person",
    ExitCode.LOCKED: "locked by another deployment",
    ExitCode.SECURITY_GATE: "security gate failed: findings in reports/security.json; nothing was changed",
    ExitCode.INTERRUPTED: "interrupted",
}


class StageflowError(Exception):
    """An expected failure with a one-line message, an optional hint and an exit code."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, hint: str | None = None, *, exit_code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        text = self.message if self.hint is None else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class UsageError(StageflowError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """stageflow.toml is malformed or invalid; names the file, the key and the reason."""

    def __init__(self, path: str, key: str, reason: str, hint: str | None = None):
        super().__init__(f"{path}: {key}: {reason}", hint)
        self.path = path
        self.key = key
        self.reason = reason


class UnknownEnvironmentError(UsageError):
    def __init__(self, name: str, known: list[str] | tuple[str, ...]):
        super().__init__(f"unknown environment {name!r}", f"known environments: {', '.join(known)}")
        self.name = name


class NotDeployed(UsageError):
    """The environment has not been built on this target (Terraform has no outputs for it)."""


class EnvironmentFailure(StageflowError):
    """The machine or the infrastructure failed us: a binary, the engine, AWS, credentials."""

    exit_code = ExitCode.ENVIRONMENT


class MissingBinaryError(EnvironmentFailure):
    pass


class LocalGuardError(EnvironmentFailure):
    """Local mode would have talked to something other than the emulator on loopback."""


class ReleaseRejected(StageflowError):
    exit_code = ExitCode.REJECTED


class RollbackFailed(StageflowError):
    exit_code = ExitCode.ROLLBACK_FAILED


class LockedError(StageflowError):
    exit_code = ExitCode.LOCKED

    def __init__(self, what: str, holder: str, hint: str | None = None):
        super().__init__(f"{what} is locked by {holder}", hint or "wait for it, or break a stale lock")
        self.holder = holder


class CheckFailed(StageflowError):
    """A check found a problem: drift, a failed smoke test, a load test outside the gates."""

    exit_code = ExitCode.UNEXPECTED


class SecurityGateFailed(CheckFailed):
    """A security scanner found problems (bandit, checkov, secrets, trivy): nothing was deployed."""

    exit_code = ExitCode.SECURITY_GATE


class Interrupted(StageflowError):
    exit_code = ExitCode.INTERRUPTED
