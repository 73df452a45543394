"""The service's lint check: ``ruff check`` and ``ruff format --check`` over its source, with the service's
own ruff settings (:func:`stageflow.checks.toolconfig.ruff_config`) or, when it has none, ruff's defaults —
never the settings of the repository around it. The stage's line names which applied."""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stageflow import process
from stageflow.checks import toolconfig
from stageflow.checks.suite import child_env, run_tool, shown, tail
from stageflow.config import Config
from stageflow.errors import CheckFailed, EnvironmentFailure


@dataclass(frozen=True)
class LintResult:
    paths: tuple[str, ...]
    ok: bool
    seconds: float
    problems: tuple[str, ...] = ()
    settings: str = "ruff's defaults"  # the service's ruff settings file, or ruff's defaults

    @property
    def summary(self) -> str:
        where = f"{', '.join(self.paths)}; settings: {self.settings}"
        if self.ok:
            return f"ruff check + format: clean ({where})"
        return f"ruff: {len(self.problems)} problem(s) in {where}; first: {self.problems[0][:160]}"

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "paths": list(self.paths),
            "settings": self.settings,
            "problems": list(self.problems[:20]),
        }


def find_ruff() -> str:
    ruff = Path(sys.executable).parent / "ruff"
    exe = str(ruff) if ruff.is_file() else shutil.which("ruff")
    if exe is None:
        raise EnvironmentFailure("ruff is not installed", "pip install -e '.[dev]'")
    return exe


def run_lint(config: Config, reporter=None, *, runner: process.Runner = process.RUNNER) -> LintResult:
    """``ruff check`` and ``ruff format --check`` over the service's source, run in its folder with its own
    ruff settings file (``--config``; the sample service has ``app/.ruff.toml``) or ruff's defaults
    (``--isolated``). A problem raises CheckFailed; ruff missing is an environment failure."""
    exe = find_ruff()
    src = config.service.source
    app = (config.root / src).resolve()
    own = toolconfig.ruff_config(app)
    settings = ["--config", str(own)] if own else ["--isolated"]
    label = shown(own, config.root) if own else f"ruff's defaults (no ruff settings in {src})"
    t0 = time.monotonic()
    env = child_env(config)
    problems: list[str] = []
    argv = [exe, "check", "--output-format", "concise", *settings, str(app)]
    check = run_tool(runner, argv, cwd=app, env=env)
    if check.returncode not in (0, 1):
        raise EnvironmentFailure(f"ruff check exited {check.returncode}: {' '.join(tail(check.stderr, 1))}")
    if check.returncode == 1:
        found = [f"{src}/{ln}" for ln in check.stdout.splitlines() if re.match(r"^\S+:\d+:\d+: ", ln)]
        problems += found or ["ruff check found problems"]
    fmt = run_tool(runner, [exe, "format", "--check", *settings, str(app)], cwd=app, env=env)
    if fmt.returncode not in (0, 1):
        raise EnvironmentFailure(f"ruff format exited {fmt.returncode}: {' '.join(tail(fmt.stderr, 1))}")
    if fmt.returncode == 1:
        found = [
            ln.replace("reformat: ", f"reformat: {src}/", 1)
            for ln in fmt.stdout.splitlines()
            if ln.startswith("Would reformat")
        ]
        problems += found or ["ruff format would reformat files"]
    res = LintResult((src,), not problems, time.monotonic() - t0, tuple(problems), label)
    if not res.ok:
        if reporter is not None:
            for p in res.problems[:10]:
                reporter.info("lint", "service", p)
        how = f"--config {own.name}" if own else "--isolated"
        raise CheckFailed(
            f"service lint failed: {res.summary}", f"(cd {src} && ruff check {how} . && ruff format {how} .)"
        )
    return res
