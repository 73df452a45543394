"""The one way Terraform runs: stream stdout/stderr line by line while capturing, with a timeout.

The child starts in its own session (process group), so on timeout SIGTERM and then SIGKILL reach
Terraform and whatever it started (providers, local-exec commands), and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from stageflow.errors import Interrupted
from stageflow.terraform.errors import TerraformTimeout, tail

LineCallback = Callable[[str, str], None]  # (line, "stdout" | "stderr")
DEFAULT_GRACE_S = 5.0


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
    """Runs a command; ``on_line`` sees each line as it comes (when ``stream``); all is captured."""

    def __init__(self, on_line: LineCallback | None = None, *, grace_s: float = DEFAULT_GRACE_S):
        self.on_line = on_line
        self.grace_s = grace_s

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        timeout: float | None = None,
        stream: bool = True,
    ) -> RunResult:
        start = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        out: list[str] = []
        err: list[str] = []
        callback = self.on_line if stream else None
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, out, "stdout", callback), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, err, "stderr", callback), daemon=True),
        ]
        for t in readers:
            t.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = self._stop(proc)
            _join(readers)
            raise TerraformTimeout(argv, float(timeout or 0), tail("".join(err)), killed) from None
        except KeyboardInterrupt:
            self._stop(proc, signal.SIGINT)
            _join(readers)
            raise Interrupted("interrupted while terraform ran", "check the state lock") from None
        _join(readers)
        return RunResult(tuple(argv), proc.returncode, "".join(out), "".join(err), time.monotonic() - start)

    def _stop(self, proc: subprocess.Popen, first: int = signal.SIGTERM) -> bool:
        """Signal the child's process group, wait ``grace_s``, then SIGKILL. True if it had to be killed."""
        _signal_group(proc.pid, first)
        try:
            proc.wait(timeout=self.grace_s)
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers it left in its group
            return False
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the group we created for this child (start_new_session)


def _pump(pipe, sink: list[str], name: str, callback: LineCallback | None) -> None:
    try:
        for line in iter(pipe.readline, ""):
            sink.append(line)
            if callback is not None:
                with contextlib.suppress(Exception):  # output must never break the run
                    callback(line.rstrip("\n"), name)
    finally:
        pipe.close()


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(timeout=5)
