"""The rollback core for a release of several functions: every function's alias back to the version
of the same recorded release, so the functions stay consistent with each other.

Which release: the in-flight deployment's previous versions / the previous versions of a canary that
ended ``failed`` with an alias still split / the last known good release (the newest succeeded
deployment that differs from what the aliases serve and was not rolled back from later,
``marked_bad``). ``--to`` names one version, which has no meaning across several functions: exit 2.
Standard library only (the rollback function's zip carries it).
"""

from __future__ import annotations

import time
from typing import Any

from stageflow.deploy.records import RollbackEvent
from stageflow.deploy.release import Release
from stageflow.errors import RollbackFailed, UsageError
from stageflow.isotime import iso
from stageflow.notify import Message
from stageflow.rollback.model import RollbackResult
from stageflow.rollback.records import close_in_flight, open_rollback_incident
from stageflow.rollback.restore import restore_or_page


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
        if dep.extra.get("marked_bad"):  # rolled back from later: never a target (as last_known_good)
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


def rollback_release(req, history, release, notifier, reporter, now, started, retry, sleep) -> RollbackResult:
    """Every function of ``release`` to its version of the same recorded release (:mod:`.several`);
    each restore verified; a function whose restore fails does not stop the others (then paged)."""
    t0 = started if started is not None else time.monotonic()
    env_name = req.environment
    states = {m.key: m.traffic.state() for m in release.members}
    in_flight = history.in_flight()
    targets = choose_targets(req, history, release, states, in_flight)
    before = {k: s.weights for k, s in states.items()}
    moved, failures = [], []
    for m in release.members:
        state, target = states[m.key], targets[m.key]
        if state.settled and state.primary == target:
            continue
        try:
            restore_or_page(req, m.traffic, target, reporter, retry, sleep, lambda: now)
        except RollbackFailed as exc:
            failures.append(f"{m.function}: {exc.one_line() if hasattr(exc, 'one_line') else exc}")
            continue
        moved.append(m.key)
        reporter.info(
            "rollback", env_name, f"{m.function}: all traffic on v{targets[m.key]} (was {before[m.key]})"
        )
    if failures:
        raise RollbackFailed(
            f"rollback of {env_name} failed for {len(failures)} of {len(release.members)} functions: "
            + "; ".join(failures),
            "page a person: traffic may still be on the bad versions",
        )
    restored_in = time.monotonic() - t0
    first = release.first.key
    if moved:
        reporter.info("rollback", env_name, f"every function restored in {restored_in:.2f} s: {req.reason}")
    else:
        reporter.info("rollback", env_name, "nothing to do: every function already on its target version")
    dep_id = close_in_flight(req, history, in_flight, now)
    funcs = {k: {"to_version": targets[k], "from_weights": before[k]} for k in targets}
    if moved or dep_id is not None:
        record_release(req, history, notifier, now, funcs, first, dep_id)
    if moved:  # the release it moved from is marked bad and an incident is opened (named by its first)
        f = funcs[first]
        open_rollback_incident(
            req, history, notifier, now, f["from_weights"], f["to_version"], in_flight if dep_id else None
        )
    return RollbackResult(
        env_name,
        bool(moved),
        before[first],
        targets[first],
        req.reason,
        req.trigger,
        dep_id,
        round(restored_in, 3) if moved else None,
        functions=funcs,
    )


def record_release(req, history, notifier, now, funcs: dict, first: str, dep_id: str | None) -> None:
    """A release's rollback as one event (every function's target and weights before) and one notice."""
    to, weights = funcs[first]["to_version"], funcs[first]["from_weights"]
    event = RollbackEvent(
        iso(now), req.trigger, req.reason, req.who, to, weights, dep_id or "", functions=funcs
    )
    data = event.to_json()
    del data["at"], data["kind"]
    history.record_event(event.kind, now, data)
    versions = ", ".join(f"{k} v{f['to_version']}" for k, f in funcs.items())
    notifier.send(
        Message(
            kind="rolled_back",
            environment=req.environment,
            service=req.service,
            deployment_id=dep_id or "-",
            text=f"{req.trigger} rollback to {versions}: {req.reason}",
            data={
                "to_version": to,
                "from_weights": weights,
                "functions": funcs,
                "trigger": req.trigger,
                "reasons": [req.reason],
            },
        )
    )
