"""The rollback core for a release of several functions: every function's alias back to the version
of the same recorded release, so the functions stay consistent with each other.

Which release: the in-flight deployment's previous versions / the previous versions of a canary that
ended ``failed`` with an alias still split / the last known good release (the newest succeeded
deployment that differs from what the aliases serve). ``--to`` names one version, which has no meaning
across several functions: exit 2. Standard library only (the rollback function's zip carries it).
"""

from __future__ import annotations

from typing import Any

from stageflow.deploy.release import Release
from stageflow.errors import UsageError


def _from(dep, key: str) -> str | None:
    return ((dep.functions or {}).get(key) or {}).get("from_version") if dep is not None else None


def _to(dep, key: str) -> str | None:
    return ((dep.functions or {}).get(key) or {}).get("to_version") if dep is not None else None


def choose_targets(req, history, release: Release, states: dict[str, Any], in_flight) -> dict[str, str]:
    """Every function's target version (see the module docstring); a function the chosen record does
    not name stays on the version its alias serves."""
    if req.to is not None:
        raise UsageError(
            f"--to names one version; {req.service} has {len(release.members)} functions",
            f"roll back to the last good release: stageflow rollback {req.environment}",
        )
    serving = {m.key: states[m.key].primary for m in release.members}
    if in_flight is not None:
        # its previous versions; killed before publishing was recorded: nothing moved, the primaries
        return {k: _from(in_flight, k) or v for k, v in serving.items()}
    if any(not s.settled for s in states.values()):
        newest = next(iter(history.list(limit=1)), None)
        if newest is not None and newest.status == "failed" and newest.functions:
            return {k: _from(newest, k) or v for k, v in serving.items()}
        return serving  # nothing recorded: the stable side of each split is what served
    done = _already_rolled_back(history)
    if done is not None and all(done.get(k, v) == v for k, v in serving.items()):
        return serving
    for dep in history.list(limit=25):
        if dep.status != "succeeded" or dep.phase == "no_change" or not dep.functions:
            continue
        wanted = {k: _to(dep, k) or v for k, v in serving.items()}
        if wanted != serving:
            return wanted
    raise UsageError(
        f"no last known good release recorded for {req.environment}",
        "every function already serves the newest recorded release",
    )


def _already_rolled_back(history) -> dict[str, str] | None:
    """The versions the newest rollback (an event, or a rolled-back deployment) restored, if it is
    newer than the newest succeeded deployment."""
    found: list[tuple[str, dict[str, str] | None]] = []
    for ev in history.events(limit=5):
        if ev.get("kind") == "rollback" and ev.get("functions"):
            found.append((ev["at"], {k: f.get("to_version") for k, f in ev["functions"].items()}))
            break
    for dep in history.list(limit=5):
        if dep.phase == "no_change" or (dep.status == "failed" and not dep.previous_version):
            continue
        when = dep.ended_at or dep.started_at
        if dep.status == "rolled_back" and dep.functions:
            found.append((when, {k: f.get("from_version") for k, f in dep.functions.items()}))
        elif dep.status == "succeeded":
            found.append((when, None))
        break
    return max(found, key=lambda p: p[0])[1] if found else None
