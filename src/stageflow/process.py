"""The one way stageflow starts a process (nox's ``command.run``).

- :func:`run`: an argv list (never a shell), the accepted exit codes, each line streamed to a callback
  while everything is captured, a timeout that sends SIGTERM and then SIGKILL to the child's own process
  group (the child and whatever it started, nothing else), Ctrl-C passed on the same way. A missing
  binary is :class:`CommandNotFound`; an exit code that is not accepted is :class:`CommandFailed`; a
  timeout is :class:`CommandTimeout`. Callers turn those into their own one-line errors.
- :func:`spawn`: a long-running child (the emulator, a server) in its own process group, stopped with
  :meth:`Background.stop` the same way.
- :func:`pid_alive`: is a process running on this host (zombies count as gone).

``Runner`` is the seam: code that starts processes takes a runner (default :data:`RUNNER`), tests pass
a fake that records argv and answers.

This is the only module under ``src/stageflow`` that imports :mod:`subprocess` (a test checks it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from stageflow.errors import EnvironmentFailure, Interrupted, MissingBinaryError

LineCallback = Callable[[str, str], None]  # (line without its newline, "stdout" | "stderr")
DEFAULT_GRACE_S = 5.0
STDERR_TAIL_LINES = 40
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class CommandNotFound(MissingBinaryError):
    """The program could not be started (not found, not executable)."""

    def __init__(self, argv: Sequence[str], reason: str):
        self.argv = tuple(argv)
        super().__init__(f"cannot run {Path(self.argv[0]).name}: {reason}", "is it installed and on PATH?")


class CommandFailed(EnvironmentFailure):
    """The process exited with a code the caller does not accept (``result`` has everything)."""

    def __init__(self, result: Result, reason: str | None = None):
        self.result = result
        self.argv = result.argv
        self.returncode = result.returncode
        name = Path(result.argv[0]).name if result.argv else "command"
        last = tail(result.stderr or result.stdout, 1)
        super().__init__(
            reason or f"{name} failed (exit {result.returncode})" + (f": {last}" if last else "")
        )


class CommandTimeout(EnvironmentFailure):
    """The process ran longer than its timeout and was stopped (``killed``: SIGTERM was not enough)."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: str, stderr: str, killed: bool):
        self.argv = tuple(argv)
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        self.killed = killed
        how = "killed (SIGKILL)" if killed else "stopped (SIGTERM)"
        super().__init__(f"{Path(self.argv[0]).name} timed out after {timeout:g} s and was {how}")


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        ok_codes: Collection[int] | None = (0,),
        on_line: LineCallback | None = None,
        input: str | None = None,
        interactive: bool = False,
    ) -> Result: ...


def run(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    ok_codes: Collection[int] | None = (0,),
    on_line: LineCallback | None = None,
    input: str | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    interactive: bool = False,
) -> Result:
    """Run ``argv`` to its end and return what it did.

    ``ok_codes=None`` accepts every exit code (the caller reads ``returncode``). ``env=None`` inherits
    this process's environment; callers that must not leak it pass a clean mapping. ``input`` is written
    to the child's stdin (then closed); otherwise stdin is /dev/null. ``interactive`` keeps the child
    in our session with our stdin (a program that reads the terminal; Ctrl-C reaches it from the
    terminal itself); its output is still streamed and captured.
    """
    argv = tuple(str(a) for a in argv)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(  # noqa: S603 - an argv list, never a shell
            argv,
            cwd=str(cwd) if cwd is not None else None,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if input is not None else (None if interactive else subprocess.DEVNULL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=not interactive,
        )
    except OSError as exc:
        raise CommandNotFound(argv, exc.strerror or str(exc)) from exc
    stop = _stop_child if interactive else stop_group
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out, "stdout", on_line), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err, "stderr", on_line), daemon=True),
    ]
    for t in readers:
        t.start()
    if input is not None:
        _feed(proc, input)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        killed = stop(proc, grace_s=grace_s)
        _join(readers)
        raise CommandTimeout(argv, float(timeout or 0), "".join(out), "".join(err), killed) from None
    except KeyboardInterrupt:
        stop(proc, signal.SIGINT, grace_s=grace_s)
        _join(readers)
        raise Interrupted(f"interrupted while {Path(argv[0]).name} ran") from None
    _join(readers)
    result = Result(argv, proc.returncode, "".join(out), "".join(err), time.monotonic() - start)
    if ok_codes is not None and result.returncode not in ok_codes:
        raise CommandFailed(result)
    return result


RUNNER: Runner = run


class Background:
    """A long-running child in its own process group (see :func:`spawn`)."""

    def __init__(self, proc: subprocess.Popen):
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def stdin(self) -> IO[str] | None:
        return self._proc.stdin

    @property
    def stdout(self) -> IO[str] | None:
        return self._proc.stdout

    @property
    def stderr(self) -> IO[str] | None:
        return self._proc.stderr

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None when it is still running after ``timeout``."""
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> bool:
        """SIGTERM to its group, then SIGKILL after ``grace_s``. True if it had to be killed."""
        if self._proc.poll() is not None:
            return False
        return stop_group(self._proc, grace_s=grace_s)


def spawn(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO | None = DEVNULL,
    stdout: int | IO | None = DEVNULL,
    stderr: int | IO | None = DEVNULL,
) -> Background:
    """Start ``argv`` in the background. ``stdin``: DEVNULL (default) or ``PIPE`` (write to
    ``handle.stdin``); ``stdout``/``stderr``: DEVNULL, STDOUT, a file, or ``PIPE`` (read them from the
    handle)."""
    argv = tuple(str(a) for a in argv)
    try:
        proc = subprocess.Popen(  # noqa: S603 - an argv list, never a shell
            argv,
            cwd=str(cwd) if cwd is not None else None,
            env=dict(env) if env is not None else None,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise CommandNotFound(argv, exc.strerror or str(exc)) from exc
    return Background(proc)


PIPE = subprocess.PIPE


def stop_group(
    proc: subprocess.Popen, first: int = signal.SIGTERM, *, grace_s: float = DEFAULT_GRACE_S
) -> bool:
    """Signal the child's process group, wait ``grace_s``, then SIGKILL. True if it had to be killed."""
    _signal_group(proc.pid, first)
    try:
        proc.wait(timeout=grace_s)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers it left in its group
        return False
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def _stop_child(
    proc: subprocess.Popen, first: int = signal.SIGTERM, *, grace_s: float = DEFAULT_GRACE_S
) -> bool:
    """Like :func:`stop_group` for a child that shares our process group (interactive): the child only."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(first)
    try:
        proc.wait(timeout=grace_s)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a running process on this host? A zombie (exited, not yet reaped) counts as gone."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal check is all we have
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the group we created for this child (start_new_session)


def _feed(proc: subprocess.Popen, data: str) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        assert proc.stdin is not None  # noqa: S101 - opened as a pipe above
        proc.stdin.write(data)
        proc.stdin.close()


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
