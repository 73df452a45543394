"""The adapter's own errors: all StageflowErrors with documented exit codes."""

from __future__ import annotations

import re
from collections.abc import Sequence

from stageflow.errors import EnvironmentFailure, LockedError, UsageError

STDERR_TAIL_LINES = 40


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def error_summary(stderr: str) -> str:
    """Terraform's own words: the ``Error: ...`` lines and where they point (``on main.tf line 3``)."""
    out: list[str] = []
    lines = [ln.strip(" │╷╵").strip() for ln in stderr.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Error: "):
            msg = line
            for nxt in lines[i + 1 : i + 4]:
                if nxt.startswith("on ") and " line " in nxt:
                    msg += f" ({nxt.rstrip(':')})"
                    break
            out.append(msg)
    if not out:
        rest = [ln for ln in lines if ln]
        return rest[-1] if rest else ""
    return "; ".join(dict.fromkeys(out))


class TerraformError(EnvironmentFailure):
    """A Terraform command failed (exit code 3). Carries the argv, its exit code and stderr's tail."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr_tail: str, hint: str | None = None):
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        cmd = " ".join(self.argv[1:3]) if len(self.argv) > 1 else "terraform"
        summary = error_summary(stderr_tail)
        super().__init__(
            f"terraform {cmd} failed (exit {returncode})" + (f": {summary}" if summary else ""),
            hint or "see Terraform's output above",
        )


class TerraformTimeout(TerraformError):
    def __init__(self, argv: Sequence[str], timeout: float, stderr_tail: str, killed: bool):
        how = "killed (SIGKILL)" if killed else "stopped (SIGTERM)"
        super().__init__(argv, -1, stderr_tail, hint="raise STAGEFLOW_TERRAFORM_TIMEOUT if it needs longer")
        cmd = " ".join(self.argv[1:3]) if len(self.argv) > 1 else "terraform"
        self.message = f"terraform {cmd} timed out after {timeout:g} s and was {how}"
        self.timeout = timeout
        self.killed = killed


class StateLockedError(LockedError):
    """Another run holds the Terraform state lock (exit 6)."""

    def __init__(self, lock_id: str, who: str, operation: str = "", path: str = ""):
        holder = who or "another run"
        detail = ", ".join(p for p in (f"lock {lock_id}" if lock_id else "", operation) if p)
        super().__init__(
            f"Terraform state{(' ' + path) if path else ''}",
            f"{holder}{(' (' + detail + ')') if detail else ''}",
            hint="wait for it to finish; a stale lock is removed with `terraform force-unlock ID`",
        )
        self.lock_id = lock_id
        self.who = who
        self.operation = operation
        self.path = path


class PolicyError(UsageError):
    """The plan breaks the environment's policy (exit 2); nothing was applied."""


class StalePlanError(UsageError):
    """The state moved since the plan was made (exit 2); nothing was applied."""


_LOCK_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*?)\s*$")


def parse_lock_info(stderr: str) -> dict[str, str] | None:
    """The ``Lock Info:`` block of "Error acquiring the state lock", or None if this is not one."""
    if "Error acquiring the state lock" not in stderr and "Error locking state" not in stderr:
        return None
    info: dict[str, str] = {}
    in_block = False
    for raw in stderr.splitlines():
        line = raw.strip(" │╷╵")
        if line.strip() == "Lock Info:":
            in_block = True
            continue
        if in_block:
            m = _LOCK_FIELD.match(line)
            if m:
                info.setdefault(m[1], m[2])
            elif line.strip():
                break
    return info


def classify(argv: Sequence[str], returncode: int, stderr: str) -> Exception:
    """The typed error for a failed command: lock contention, a stale plan, or a TerraformError."""
    lock = parse_lock_info(stderr)
    if lock is not None:
        return StateLockedError(
            lock.get("ID", ""), lock.get("Who", ""), lock.get("Operation", ""), lock.get("Path", "")
        )
    if "Saved plan is stale" in stderr:
        return StalePlanError(
            "the saved plan is stale: the state changed since it was made", "plan again and review"
        )
    return TerraformError(argv, returncode, tail(stderr))
