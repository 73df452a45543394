"""`stageflow status ENV`: what is deployed, what is in flight, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stageflow.deploy.locks import LockView, assess
from stageflow.deploy.records import Deployment, check_line
from stageflow.freeze.model import active, show
from stageflow.isotime import format_age

if TYPE_CHECKING:
    from stageflow.deploy.canary import Context


def status(ctx: Context) -> tuple[str, dict]:
    """The status lines and the ``--json`` data of the wired environment."""
    env_name = ctx.env.name
    rel = ctx.release
    states = [(mem, mem.traffic.state()) for mem in rel.members]
    alias = states[0][1]
    current = ctx.history.in_flight()  # first: it releases a lock left by a finished run
    lock = ctx.history.lock()
    holder = None
    if lock:
        holder = current if current and current.deployment_id == lock.get("holder") else None
        holder = holder or ctx.history.get(str(lock.get("holder")))
    view = assess(lock, holder, env_name)
    latest = ctx.history.list(limit=1)
    dep = current or (latest[0] if latest else None)
    good = ctx.history.last_known_good()
    events = ctx.history.events(limit=10)
    rollbacks = [e for e in events if e.get("kind") == "rollback"]
    last_rb = rollbacks[0] if rollbacks else None
    # the record keeps only the last verdict; the last three are the newest verdict items
    recent = (ctx.history.recent_verdicts(dep.deployment_id, 3) or dep.verdicts[-3:]) if dep else []
    broken = [e for e in events if e.get("kind") == "lock_broken"]
    last_broken = broken[0] if broken else None
    data = {
        "environment": env_name,
        "function": ctx.outputs.function_name,
        "alias": ctx.outputs.alias_name,
        "url": ctx.outputs.url,
        "resources": ctx.outputs.source,
        "weights": alias.weights,
        "functions": [
            {"key": mem.key, "function": mem.function, "alias": mem.alias, "weights": st.weights}
            for mem, st in states
        ],
        "release": dict(dep.functions) if dep else None,
        "locked_by": lock.get("holder") if lock else None,
        "lock": view.to_json() if view else None,
        "last_lock_broken": last_broken,
        "in_flight": current is not None,
        "deployment_id": dep.deployment_id if dep else None,
        "phase": dep.phase if dep else None,
        "status": dep.status if dep else None,
        "version": dep.version if dep else None,
        "previous_version": dep.previous_version if dep else None,
        "step": dep.state.step if dep else None,
        "reason": dep.state.reason if dep else None,
        "pre_traffic": dep.extra.get("pre_traffic") if dep else None,
        "last_verdicts": [v.to_json() for v in recent],
        "deadline": dep.state.deadline if dep else None,
        "approvals": list(dep.extra.get("approvals") or ()) if dep else [],
        "last_known_good": good.version if good else None,
        "transitions": [t.to_json() for t in dep.transitions] if dep else [],
        "last_rollback": last_rb,
    }
    frozen = active(env_name, ctx.env.freeze, ctx.history.freeze_item(), datetime.now(UTC))
    data["freeze"] = frozen.to_json() if frozen else None
    lines = _deployment_lines(ctx, alias.weights, dep, current, recent, view, data)
    if frozen:
        lines.append(f"  frozen: until {show(frozen.until)}: {frozen.reason} ({frozen.source})")
    if last_rb and (dep is None or last_rb["at"] >= (dep.ended_at or dep.started_at)):
        lines.append(
            f"  last rollback: {last_rb['at']} to {_rolled_to(last_rb)} ({last_rb.get('trigger')}, "
            f"{last_rb.get('who')}): {last_rb.get('reason')}"
        )
    lines += _lock_lines(view, current, dep)
    if last_broken and (dep is None or last_broken["at"] >= dep.started_at):
        lines.append(
            f"  lock broken: {last_broken['at']} by {last_broken.get('who')} (held by "
            f"{last_broken.get('holder')}): {last_broken.get('reason')}"
        )
    lines.append(
        f"  last known good: v{data['last_known_good']}" if good else "  last known good: none recorded"
    )
    return "\n".join(lines), data


def _rolled_to(event: dict) -> str:
    """``v3``, or ``api v3, worker v2`` for a release of several functions."""
    funcs = event.get("functions") or {}
    if len(funcs) > 1:
        return ", ".join(f"{k} v{f.get('to_version')}" for k, f in funcs.items())
    return f"v{event.get('to_version')}"


def _function_versions(key: str, f) -> str:
    new, old = f.get("to_version"), f.get("from_version")
    return f"{key} v{old}→v{new}" if new != old else f"{key} v{new} (unchanged)"


def history_lines(deps: list[Deployment], events: list[dict]) -> list[str]:
    """`stageflow history ENV`: one line per deployment (with why a release never took traffic), then the
    rollbacks and broken locks recorded outside deployments."""
    lines = []
    for d in deps:
        lines.append(f"{d.deployment_id}  v{d.version or '?':<4} {d.status:<17} {d.phase:<13} {d.who}")
        if len(d.functions) > 1:  # a release of several functions: each one's versions
            lines.append(
                "    functions: " + ", ".join(_function_versions(k, f) for k, f in d.functions.items())
            )
        checked = d.extra.get("pre_traffic") or {}
        if checked.get("status") not in (None, "passed", "not run"):
            lines.append(f"    pre-traffic check: {check_line(checked)}")
    for e in events:
        lines.append(
            f"{e['at']}  {e['kind']:<11} {_event_what(e)} by {e.get('who') or e.get('by')}: {e.get('reason')}"
        )
    return lines


def _event_what(e: dict) -> str:
    kind = e["kind"]
    if kind == "rollback":
        return f"to {_rolled_to(e)} ({e.get('trigger')})"
    if kind == "freeze":
        return f"until {e.get('until')}"
    if kind == "unfreeze":
        return f"lifted {e.get('lifted')!r}"
    if kind == "infra_rollback":
        return f"infrastructure of v{e.get('to_version')} from commit {e.get('commit')} ({e.get('summary')})"
    if kind == "freeze_override":
        return f"emergency deploy through {(e.get('freeze') or {}).get('reason')!r}"
    return f"lock of {e.get('holder')}"


def _deployment_lines(
    ctx: Context, weights, dep: Deployment | None, current, recent, view: LockView | None, data: dict
) -> list[str]:
    from stageflow.deploy.release import release_label

    env_name = ctx.env.name
    lock = data["locked_by"]
    lines = [f"{env_name}: {ctx.outputs.function_name}:{ctx.outputs.alias_name} serves " + _weights(weights)]
    if len(data["functions"]) > 1:  # every function with its alias weights, in place of the line above
        lines = [f"{env_name}: {len(data['functions'])} functions, one release"] + [
            f"  {f['key']}: {f['function']}:{f['alias']} serves {_weights(f['weights'])}"
            for f in data["functions"]
        ]
    if ctx.outputs.url:
        lines.append(f"  url: {ctx.outputs.url}")
    if dep is None:
        lines.append("  no deployments recorded")
    else:
        what = "in flight" if current else "last deployment"
        lines.append(
            f"  {what}: {dep.deployment_id} {release_label(dep)} ({dep.status}, phase {dep.phase}) "
            f"by {dep.who}"
        )
        if data["reason"]:
            lines.append(f"  why: {data['reason']}")
        if checked := check_line(data["pre_traffic"]):
            lines.append(f"  pre-traffic check: {checked}")
        for v in recent:
            lines.append(
                f"  verdict {v.at}: {v.decision} at {v.weight}% ({'; '.join(v.reasons) or 'all gates pass'})"
            )
        lines += [f"  answer: {answer_line(a)}" for a in data["approvals"]]
        if current and dep.phase == "awaiting_approval":
            lines.append(f"  deadline: {dep.state.deadline} (then {_then(dep.state.approval_for)})")
            lines.append(f"  next: stageflow approve {env_name}  |  stageflow reject {env_name}")
        elif current and view and not view.stale:
            lines.append(
                f"  if its run was killed: stageflow resume {env_name}  |  stageflow rollback {env_name}"
            )
        elif current and not lock:
            lines.append(
                f"  its run holds no lock (killed): stageflow resume {env_name}  |  "
                f"stageflow rollback {env_name}"
            )
    return lines


def answer_line(a: dict) -> str:
    """One recorded answer at a pause: when, who (roles), which option, why, what it did."""
    roles = f" ({', '.join(a['roles'])})" if a.get("roles") else ""
    option = a.get("option")
    if option == "extend":
        option = f"approve --extend {a.get('minutes'):g}"
    elif option == "skip_to_full":
        option = "approve --skip-to-full"
    why = f": {a['reason']}" if a.get("reason") else ""
    return f"{a.get('at')} {a.get('who')}{roles} {option} at {a.get('pause')} -> {a.get('result')}{why}"


def _then(gate: str | None) -> str:
    return "rejected" if gate == "before_canary" else "rolled back"


def _weights(weights: dict[str, int]) -> str:
    return ", ".join(f"v{v} {w}%" for v, w in sorted(weights.items(), key=lambda kv: -kv[1]))


def _lock_lines(view: LockView | None, current, dep: Deployment | None) -> list[str]:
    if view is None:
        return []
    lines = [
        f"  lock: held by {view.holder} ({view.who or 'unknown'}"
        + (f", pid {view.pid} on {view.host}" if view.pid and view.host else "")
        + f") for {format_age(view.age_seconds)}: "
        + (f"STALE, {view.why}" if view.stale else view.why)
    ]
    if not current:
        lines.append(f"  no deployment in flight holds it: {view.unlock_command or 'wait for it'}")
    if view.next and not (current and dep is not None and dep.phase == "awaiting_approval"):  # said above
        lines.append("  next: " + "  |  ".join(view.next))
    return lines
