"""How Terraform runs: through :func:`stageflow.process.run` (stream while capturing, timeout with
SIGTERM then SIGKILL to Terraform's own process group), with Terraform's own errors on top.

``CommandRunner`` is the seam :class:`~stageflow.terraform.client.Terraform` takes; tests pass a fake
that records argv and answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from stageflow import process
from stageflow.errors import Interrupted
from stageflow.terraform.errors import TerraformTimeout, tail

LineCallback = Callable[[str, str], None]  # (line, "stdout" | "stderr")
DEFAULT_GRACE_S = process.DEFAULT_GRACE_S


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


class CommandRunner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        timeout: float | None = None,
        stream: bool = True,
    ) -> RunResult: ...


class SubprocessRunner:
    """Runs a command; ``on_line`` sees each line as it comes (when ``stream``); all is captured.
    Every exit code is returned (the caller decides); a binary that cannot start is
    :class:`~stageflow.process.CommandNotFound`."""

    def __init__(
        self,
        on_line: LineCallback | None = None,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        run: Callable[..., process.Result] = process.run,
    ):
        self.on_line = on_line
        self.grace_s = grace_s
        self._run = run

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        timeout: float | None = None,
        stream: bool = True,
    ) -> RunResult:
        try:
            res = self._run(
                argv,
                cwd=cwd,
                env=env,
                timeout=timeout,
                ok_codes=None,
                on_line=self.on_line if stream else None,
                grace_s=self.grace_s,
            )
        except process.CommandTimeout as exc:
            raise TerraformTimeout(argv, exc.timeout, tail(exc.stderr), exc.killed) from None
        except Interrupted:
            raise Interrupted("interrupted while terraform ran", "check the state lock") from None
        return RunResult(res.argv, res.returncode, res.stdout, res.stderr, res.duration_s)
