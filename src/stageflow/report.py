"""Human output and --json output. Core code never writes to the terminal itself: it calls a Reporter.

Lines a person reads go to stderr as ``phase subject: message``; ``--json`` results go to stdout.
Everything passes through the process-wide redactor, so secret values never reach the terminal.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any

from stageflow.redact import REDACTOR, Redactor


@dataclass(frozen=True)
class BakeProgress:
    """What a person watching a bake wants to see; the live view on a terminal shows it."""

    environment: str
    version: str
    stable: str | None
    phase: str
    step: int  # 0-based index into the policy's steps
    steps: int
    weight: int
    window_left_s: float  # until the step's window ends
    last: dict | None = None  # the last verdict record (decision, results with their numbers)

    def lines(self, next_check_s: float) -> list[str]:
        mins, secs = divmod(max(0, int(self.window_left_s)), 60)
        nm, ns = divmod(max(0, int(next_check_s)), 60)
        head = (
            f"canary {self.environment}: step {self.step + 1}/{self.steps} {self.phase} at {self.weight}% "
            f"→ v{self.version}" + (f" (stable v{self.stable})" if self.stable else "")
        )
        out = [head, f"  {mins:d}:{secs:02d} left in the window · next check in {nm:d}:{ns:02d}"]
        if self.last:
            out.append(f"  last check {str(self.last.get('at', ''))[11:19]}: {self.last.get('decision')}")
            for r in self.last.get("results") or []:
                if r.get("kind") == "alarm" or r.get("observed") is None:
                    continue
                out.append("    " + _numbers(r))
        else:
            out.append("  no check yet")
        return out


def _numbers(r: dict) -> str:
    def fmt(v):
        if v is None:
            return "—"
        return f"{v:.2%}" if r.get("metric") == "error_rate" else f"{v:.0f} ms"

    gate = f" (gate {fmt(r['threshold'])})" if r.get("kind") == "absolute" and r.get("threshold") else ""
    return (
        f"{r.get('kind')} {r.get('metric')}: canary {fmt(r.get('observed'))} vs stable "
        f"{fmt(r.get('baseline'))}{gate} n={r.get('canary_count', 0)}/{r.get('stable_count', 0)} "
        f"{r.get('outcome')}"
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """Control characters (ANSI escapes, carriage returns, C1 codes) shown as ``\\xNN``: a name from a
    config, a scenario or a remote answer cannot move the cursor, recolour or rewrite the terminal.
    Newlines and tabs stay."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def finite_json(data: Any) -> Any:
    """``data`` with every NaN/infinity replaced by ``None`` (JSON has no such numbers)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite_json(v) for v in data]
    return data


def dumps_json(data: Any, **kwargs) -> str:
    """Valid JSON always (``allow_nan=False``): objects through ``to_json``/``isoformat``/``str``
    first, then non-finite numbers as ``null``."""
    plain = json.loads(json.dumps(data, default=_default))
    return json.dumps(finite_json(plain), allow_nan=False, **kwargs)


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
            stream.write(escape_controls(self.redactor.redact(text)) + "\n")
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

    def wait(self, clock, seconds: float, label: str, progress: BakeProgress | None = None) -> None:
        """Sleep on ``clock``; on a terminal with a real clock, show a live view (rich): the countdown,
        or with ``progress`` the step, weight, time left and the last check's numbers. Without a
        terminal nothing is drawn (the one plain line per check is the driver's)."""
        if seconds <= 0:
            return
        from stageflow.clock import SystemClock

        if not (self.is_tty and isinstance(clock, SystemClock)) or self.quiet:
            clock.sleep(seconds)
            return
        import time

        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        console = Console(file=self.err, no_color=not self.color, force_terminal=True)
        end = time.monotonic() + seconds
        window_end = end + (progress.window_left_s - seconds if progress else 0)
        with Live(console=console, transient=True, refresh_per_second=2, auto_refresh=False) as live:
            while (left := end - time.monotonic()) > 0:
                if progress is None:
                    mins, secs = divmod(int(left), 60)
                    text = f"{label} — next check in {mins:d}:{secs:02d}"
                else:
                    now_left = window_end - time.monotonic()
                    shown = BakeProgress(**{**progress.__dict__, "window_left_s": now_left})
                    text = "\n".join(shown.lines(left))
                live.update(Text(escape_controls(self.redactor.redact(text))), refresh=True)
                clock.sleep(min(1.0, left))

    def result(self, human: str | None, data: Any) -> None:
        """The command's result: JSON on stdout with --json, else the human text on stdout."""
        if self.json_mode:
            self._write(self.out, dumps_json(data, sort_keys=True))
        elif human is not None:
            self._write(self.out, human)


NULL_REPORTER = Reporter(quiet=True)
