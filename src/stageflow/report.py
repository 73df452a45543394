"""Human output and --json output. Core code never writes to the terminal itself: it calls a Reporter.

Lines a person reads go to stderr as ``phase subject: message``; ``--json`` results go to stdout.
Everything passes through the process-wide redactor, so secret values never reach the terminal.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import IO, Any

from stageflow.redact import REDACTOR, Redactor


def _default(o: Any):
    if hasattr(o, "to_json"):
        return o.to_json()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


class Reporter:
    def __init__(
        self,
        *,
        json_mode: bool = False,
        err: IO[str] | None = None,
        out: IO[str] | None = None,
        redactor: Redactor | None = None,
        quiet: bool = False,
    ):
        self.json_mode = json_mode
        self._err = err
        self._out = out
        self.redactor = redactor if redactor is not None else REDACTOR
        self.quiet = quiet
        self._lock = threading.Lock()

    @property
    def err(self) -> IO[str]:
        return self._err or sys.stderr

    @property
    def out(self) -> IO[str]:
        return self._out or sys.stdout

    @property
    def is_tty(self) -> bool:
        try:
            return self.err.isatty() and not os.environ.get("CI")
        except (AttributeError, ValueError):
            return False

    @property
    def color(self) -> bool:
        return self.is_tty and "NO_COLOR" not in os.environ

    def _write(self, stream: IO[str], text: str) -> None:
        with self._lock:
            stream.write(self.redactor.redact(text) + "\n")
            stream.flush()

    def info(self, phase: str, subject: str, message: str) -> None:
        """A progress line: ``phase subject: message``."""
        if not self.quiet:
            self._write(self.err, f"{phase} {subject}: {message}" if subject else f"{phase}: {message}")

    def warn(self, message: str) -> None:
        self._write(self.err, f"stageflow: warning: {message}")

    def child(self, line: str) -> None:
        """A line of a child process's output (terraform, docker), streamed as it comes."""
        if not self.quiet:
            self._write(self.err, line.rstrip("\n"))

    def wait(self, clock, seconds: float, label: str) -> None:
        """Sleep on ``clock``; on a terminal with a real clock, show a live countdown (rich)."""
        if seconds <= 0:
            return
        from stageflow.clock import SystemClock

        if not (self.is_tty and isinstance(clock, SystemClock)) or self.quiet:
            clock.sleep(seconds)
            return
        import time

        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.err, no_color=not self.color)
        end = time.monotonic() + seconds
        with Live(console=console, transient=True, refresh_per_second=2) as live:
            while (left := end - time.monotonic()) > 0:
                mins, secs = divmod(int(left), 60)
                live.update(self.redactor.redact(f"{label} — next check in {mins:d}:{secs:02d}"))
                clock.sleep(min(1.0, left))

    def result(self, human: str | None, data: Any) -> None:
        """The command's result: JSON on stdout with --json, else the human text on stdout."""
        if self.json_mode:
            self._write(self.out, json.dumps(data, default=_default, sort_keys=True))
        elif human is not None:
            self._write(self.out, human)


NULL_REPORTER = Reporter(quiet=True)
