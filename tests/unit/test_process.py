"""The one process runner: exit codes, streaming while capturing, timeouts that reach the group."""

from __future__ import annotations

import sys
import time

import pytest

from stageflow import process
from stageflow.errors import ExitCode


def test_captures_and_streams_both_streams():
    seen: list[tuple[str, str]] = []
    res = process.run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
        on_line=lambda line, name: seen.append((line, name)),
    )
    assert res.returncode == 0 and res.stdout == "out\n" and res.stderr == "err\n"
    assert sorted(seen) == [("err", "stderr"), ("out", "stdout")]


def test_unaccepted_exit_code_is_command_failed_with_the_result():
    with pytest.raises(process.CommandFailed) as info:
        process.run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
    assert info.value.returncode == 3 and "boom" in info.value.one_line()
    assert info.value.exit_code == ExitCode.ENVIRONMENT


def test_accepted_codes_and_none_accepts_everything():
    argv = [sys.executable, "-c", "import sys; sys.exit(2)"]
    assert process.run(argv, ok_codes=(0, 2)).returncode == 2
    assert process.run(argv, ok_codes=None).returncode == 2


def test_missing_binary_is_one_line_exit_3():
    with pytest.raises(process.CommandNotFound) as info:
        process.run(["/nonexistent/stageflow-no-such-binary"])
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert "stageflow-no-such-binary" in info.value.one_line()


def test_input_reaches_stdin():
    res = process.run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], input="abc")
    assert res.stdout.strip() == "ABC"


def test_timeout_stops_the_child_and_its_children():
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    start = time.monotonic()
    with pytest.raises(process.CommandTimeout) as info:
        process.run([sys.executable, "-c", code], timeout=1.5, grace_s=1)
    assert time.monotonic() - start < 10
    grandchild = int(info.value.stdout.split()[0])
    deadline = time.monotonic() + 5
    while process.pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.pid_alive(grandchild)


def test_spawn_and_stop():
    bg = process.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    assert process.pid_alive(bg.pid) and bg.poll() is None
    bg.stop(grace_s=2)
    assert bg.wait(5) is not None and not process.pid_alive(bg.pid)


def test_pid_alive_rejects_nonsense():
    assert not process.pid_alive(0) and not process.pid_alive(-1)


def test_interactive_child_keeps_our_stdin_and_session():
    import os

    code = "import os, sys; print(os.getsid(0)); print(sys.stdin is not None and not sys.stdin.closed)"
    res = process.run([sys.executable, "-c", code], interactive=True)
    sid, has_stdin = res.stdout.split()
    assert int(sid) == os.getsid(0) and has_stdin == "True"
    own = process.run([sys.executable, "-c", "import os; print(os.getsid(0))"])
    assert int(own.stdout) != os.getsid(0)  # the default: a session (and process group) of its own
