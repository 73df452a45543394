"""The service's lint check: ``ruff check`` and ``ruff format --check`` over its source."""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stageflow import process
from stageflow.checks.suite import child_env, run_tool, tail
from stageflow.config import Config
from stageflow.errors import CheckFailed, EnvironmentFailure


@dataclass(frozen=True)
class LintResult:
    paths: tuple[str, ...]
    ok: bool
    seconds: float
    problems: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        where = ", ".join(self.paths)
        if self.ok:
            return f"ruff check + format: clean ({where})"
        return f"ruff: {len(self.problems)} problem(s) in {where}; first: {self.problems[0][:160]}"

    def to_json(self) -> dict:
        return {"ok": self.ok, "paths": list(self.paths), "problems": list(self.problems[:20])}


def find_ruff() -> str:
    ruff = Path(sys.executable).parent / "ruff"
    exe = str(ruff) if ruff.is_file() else shutil.which("ruff")
    if exe is None:
        raise EnvironmentFailure("ruff is not installed", "pip install -e '.[dev]'")
    return exe


def run_lint(config: Config, reporter=None, *, runner: process.Runner = process.RUNNER) -> LintResult:
    """``ruff check`` and ``ruff format --check`` over the service's source, with the nearest ruff
    settings (the sample service has its own ``app/.ruff.toml``). A problem raises CheckFailed; ruff
    missing is an environment failure."""
    exe = find_ruff()
    src = config.service.source
    t0 = time.monotonic()
    env = child_env(config)
    problems: list[str] = []
    check = run_tool(runner, [exe, "check", "--output-format", "concise", src], cwd=config.root, env=env)
    if check.returncode not in (0, 1):
        raise EnvironmentFailure(f"ruff check exited {check.returncode}: {' '.join(tail(check.stderr, 1))}")
    if check.returncode == 1:
        found = [ln for ln in check.stdout.splitlines() if re.match(r"^\S+:\d+:\d+: ", ln)]
        problems += found or ["ruff check found problems"]
    fmt = run_tool(runner, [exe, "format", "--check", src], cwd=config.root, env=env)
    if fmt.returncode not in (0, 1):
        raise EnvironmentFailure(f"ruff format exited {fmt.returncode}: {' '.join(tail(fmt.stderr, 1))}")
    if fmt.returncode == 1:
        found = [ln for ln in fmt.stdout.splitlines() if ln.startswith("Would reformat")]
        problems += found or ["ruff format would reformat files"]
    res = LintResult((src,), not problems, time.monotonic() - t0, tuple(problems))
    if not res.ok:
        if reporter is not None:
            for p in res.problems[:10]:
                reporter.info("lint", "service", p)
        raise CheckFailed(f"service lint failed: {res.summary}", f"ruff check {src}; ruff format {src}")
    return res
