"""Canary policies and code changes for tests that drive real deploys on the shared dev environment."""

from __future__ import annotations

import json
from pathlib import Path

# Short bakes on the virtual clock: 10 % and 50 % for two minutes each, then 100 % and two minutes of
# monitoring.
FAST_POLICY = """
[environments.dev.canary]
steps = [{ weight = 10, bake_minutes = 2 }, { weight = 50, bake_minutes = 2 }, { weight = 100 }]
post_promotion_minutes = 2

[environments.dev.gates]
min_latency_minutes = 2
"""

# One step at 10 %, then 100 %, then a short monitoring window (the fault cycles: fewer calls each).
FAST_TWO_STEPS = """
[environments.dev.canary]
steps = [{ weight = 10, bake_minutes = 2 }, { weight = 100 }]
post_promotion_minutes = 2

[environments.dev.gates]
min_latency_minutes = 2
"""

APPROVALS = """
[environments.dev.approvals]
before_canary = true
between_steps = true
"""

PAUSE_AT_10 = """
[environments.dev.approvals]
before_canary = false
between_steps = true
"""


def with_policy(config: Path, *blocks: str, out: Path | None = None) -> Path:
    """``config`` (a stageflow.toml) with its dev canary policy replaced by ``blocks``, written to
    ``out`` or in place; returns the file written."""
    text = config.read_text()
    start = text.index("[environments.dev.canary]")
    end = text.index("[environments.staging]")
    dst = out or config
    dst.write_text(text[:start] + "\n".join(b.strip() + "\n" for b in blocks) + "\n" + text[end:])
    return dst


def change_code(project: Path, marker: str) -> None:
    """A code change the next deploy publishes, formatted as ruff formats it (the deploy lints first)."""
    (project / "app" / "service" / "build_marker.py").write_text(f"MARKER = {json.dumps(marker)}\n")
