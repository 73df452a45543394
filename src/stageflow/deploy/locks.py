"""The deploy lock, for people: who holds it, for how long, whether it looks stale, what to run.

A lock item (history.py) holds the deployment id, who, the run's time (``since``), the wall-clock time
it was taken (``acquired``), the host name and the pid of the process that took it. It looks **stale**
when its holder's process is not running on this host (a run killed by SIGKILL, OOM or a lost
machine), or when it is older than :data:`STALE_AFTER` whatever the host. A deployment that waits for
an approval holds the lock on purpose with no process running: that is never stale.

``unlock`` breaks a lock and records a ``lock_broken`` event (who, why, whose lock, its age). It refuses
(exit 6, nothing changed) while the holder is alive — same host: its pid runs; another host: a fresh
heartbeat (:func:`stageflow.history.locks.holder_alive`) — unless ``--force`` (recorded as forced, with
why the holder looked alive). It will not strand a deployment that moved traffic: that one is finished
by ``resume`` or ``rollback``, which take the lock over. A deployment that never moved traffic is
closed as ``failed`` with the lock.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stageflow.deploy.records import ACTIVE, Deployment, Transition
from stageflow.errors import LockedError, UsageError
from stageflow.history import lock_age_seconds, lock_holder_text
from stageflow.history.locks import holder_alive
from stageflow.isotime import format_age, iso
from stageflow.process import pid_alive

STALE_AFTER = timedelta(hours=6)  # longer than any canary's bake + the 120-min approval timeout


@dataclass(frozen=True)
class LockView:
    holder: str
    who: str | None
    host: str | None
    pid: int | None
    since: str | None
    age_seconds: float | None
    stale: bool
    why: str  # why it does or does not look stale
    deployment_status: str | None  # the holder's deployment record, if any
    next: list[str] = field(default_factory=list)  # the commands to run, in order of preference

    @property
    def unlock_command(self) -> str:
        return next((c for c in self.next if " unlock " in c), "")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["age"] = format_age(self.age_seconds)
        d["unlock_command"] = self.unlock_command or None
        return d


def assess(
    lock: dict | None,
    dep: Deployment | None,
    env_name: str,
    *,
    now: datetime | None = None,
    host: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> LockView | None:
    """What a person needs to know about ``lock`` (``dep``: the holder's record, if it exists)."""
    if not lock:
        return None
    host = host or socket.gethostname()
    age = lock_age_seconds(lock, now or datetime.now(UTC))
    pid = int(lock["pid"]) if str(lock.get("pid") or "").isdigit() else None
    lock_host = lock.get("host")
    waiting = dep is not None and dep.status == "awaiting_approval"
    unlock = f'stageflow unlock {env_name} --reason "holder {lock.get("holder")} is gone"'
    if waiting:
        stale, why = False, "the deployment waits for a person's approval (no process holds it)"
    elif lock_host == host and pid is not None and not alive(pid):
        stale, why = True, f"its process (pid {pid}) is not running on {host}"
    elif age is not None and age > STALE_AFTER.total_seconds():
        stale, why = (
            True,
            f"held for {format_age(age)}, longer than {format_age(STALE_AFTER.total_seconds())}",
        )
    elif lock_host and lock_host != host:
        stale, why = False, f"held by a process on {lock_host}; ask there, or wait"
    elif pid is not None:
        stale, why = False, f"its process (pid {pid}) is running on {host}"
    else:
        stale, why = False, "the lock names no process; judge by its age"
    in_flight = dep is not None and dep.status in ACTIVE
    if waiting:
        nxt = [
            f"stageflow approve {env_name}",
            f"stageflow reject {env_name}",
            f"stageflow rollback {env_name}",
        ]
    elif stale and in_flight:
        nxt = [f"stageflow resume {env_name}", f"stageflow rollback {env_name}"]
        if not moved_traffic(dep):
            nxt.append(unlock)
    elif stale:
        nxt = [unlock]
    else:
        nxt = []
    return LockView(
        holder=str(lock.get("holder")),
        who=lock.get("who"),
        host=lock_host,
        pid=pid,
        since=lock.get("acquired") or lock.get("since"),
        age_seconds=round(age, 1) if age is not None else None,
        stale=stale,
        why=why,
        deployment_status=dep.status if dep else None,
        next=nxt,
    )


def moved_traffic(dep: Deployment) -> bool:
    """Whether a deployment may have moved traffic: its version was recorded and its canary began."""
    if not dep.version or dep.phase in ("publishing", "no_change"):
        return False
    return not (dep.state.phase == "pending" and not dep.state.weight)


@dataclass(frozen=True)
class UnlockResult:
    broken: dict | None
    closed: str | None  # the deployment closed as failed with the lock (it never moved traffic)


def unlock(
    ctx,
    reason: str,
    who: str,
    now: datetime,
    *,
    force: bool = False,
    alive: Callable[[int], bool] = pid_alive,
) -> UnlockResult:
    """Break the environment's lock, recorded (``lock_broken``). Refuses (exit 2, nothing changed)
    when its deployment moved traffic: ``resume`` or ``rollback`` finish that one; refuses (exit 6)
    while its holder is alive unless ``force``."""
    if not reason.strip():
        raise UsageError("breaking a lock needs a reason", "--reason 'the run was killed at 14:02'")
    env_name = ctx.env.name
    lock = ctx.history.lock()
    if lock is None:
        return UnlockResult(None, None)
    living = holder_alive(lock, alive=alive)
    if living and not force:
        raise LockedError(
            f"environment {env_name}",
            f"{lock_holder_text(lock)}, which is alive: {living}",
            f"wait for it; only if it must stop: stageflow unlock {env_name} --force --reason TEXT",
        )
    dep = ctx.history.get(str(lock.get("holder")))
    closed = None
    if dep is not None and dep.status in ACTIVE:
        if dep.status == "awaiting_approval" or moved_traffic(dep):
            raise UsageError(
                f"deployment {dep.deployment_id} holds the lock and is {dep.phase} "
                f"(v{dep.version}); unlocking would strand its traffic",
                f"finish it: stageflow rollback {env_name} (or resume / reject)",
            )
        ctx.history.update(
            dep,
            status="failed",
            phase="failed",
            ended_at=iso(now),
            transition=Transition(
                iso(now), dep.phase, "failed", f"lock broken by {who}: {reason}; no traffic moved"
            ),
        )
        closed = dep.deployment_id
    held = ctx.history.break_lock(reason, who, now, forced=living, expect=str(lock.get("holder")))
    return UnlockResult(held, closed)
