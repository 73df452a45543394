"""The deploy lock for people (deploy/locks.py): stale detection, its age, what to run, and `unlock`
recorded in the history; on in-memory fakes and a fake process table."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from stageflow.deploy import canary, locks
from stageflow.deploy.records import Deployment, State
from stageflow.errors import ExitCode, LockedError, UsageError
from stageflow.isotime import iso
from tests.fakes import T0, FakeArtifact, InMemoryHistory, config_env, fake_context

HOST = "test-host"


def _held(history: InMemoryHistory, dep_id: str = "20260101T000000Z-aaaaaa", *, minutes: float = 3):
    history.wall_now = T0
    history.acquire_lock(dep_id, "alice@test-host", T0)
    history.wall_now = T0 + timedelta(minutes=minutes)
    return history.lock()


def _dep(dep_id: str, status: str = "in_progress", phase: str = "baking", weight: int = 10) -> Deployment:
    return Deployment(
        deployment_id=dep_id,
        environment="dev",
        service="svc",
        version="2",
        previous_version="1",
        status=status,
        phase=phase,
        started_at=iso(T0),
        who="alice@test-host",
        state=State(phase=phase, weight=weight, step=0),
    )


def test_a_lock_whose_process_is_gone_on_this_host_is_stale_with_its_age_and_the_commands():
    h = InMemoryHistory()
    lock = _held(h, minutes=7)
    dep = _dep(lock["holder"])
    view = locks.assess(lock, dep, "dev", now=h.wall_now, host=HOST, alive=lambda pid: False)
    assert view.stale and "pid 4242" in view.why and "not running" in view.why
    assert view.age_seconds == 420 and view.to_json()["age"] == "7 min"
    # traffic moved: finish it, never just unlock
    assert view.next == ["stageflow resume dev", "stageflow rollback dev"]
    alive = locks.assess(lock, dep, "dev", now=h.wall_now, host=HOST, alive=lambda pid: True)
    assert not alive.stale and alive.next == [] and "is running" in alive.why


def test_a_lock_with_no_deployment_says_the_exact_unlock_command():
    h = InMemoryHistory()
    lock = _held(h)
    view = locks.assess(lock, None, "dev", now=h.wall_now, host=HOST, alive=lambda pid: False)
    assert view.stale
    assert view.unlock_command == f'stageflow unlock dev --reason "holder {lock["holder"]} is gone"'


def test_on_another_host_only_age_makes_a_lock_stale_and_a_paused_canary_never_is():
    h = InMemoryHistory()
    lock = _held(h, minutes=30)
    other = locks.assess(lock, None, "dev", now=h.wall_now, host="elsewhere", alive=lambda pid: False)
    assert not other.stale and "on test-host" in other.why
    old = locks.assess(lock, None, "dev", now=T0 + locks.STALE_AFTER + timedelta(minutes=1), host="elsewhere")
    assert old.stale and "longer than 6.0 h" in old.why
    paused = _dep(lock["holder"], status="awaiting_approval", phase="awaiting_approval")
    view = locks.assess(lock, paused, "dev", now=h.wall_now, host=HOST, alive=lambda pid: False)
    assert not view.stale and view.next[:2] == ["stageflow approve dev", "stageflow reject dev"]
    assert locks.assess(None, None, "dev") is None


def test_a_blocked_deploy_names_the_holder_and_its_age():
    h = InMemoryHistory()
    _held(h, minutes=12)
    ctx = fake_context(config_env("dev"), history=h)
    with pytest.raises(LockedError) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    line = exc.value.one_line()
    assert exc.value.exit_code == ExitCode.LOCKED
    assert "20260101T000000Z-aaaaaa (alice@test-host, pid 4242 on test-host, held for 12 min)" in line
    assert "stageflow unlock dev --reason" in line


def test_unlock_is_recorded_and_a_new_deploy_then_proceeds():
    h = InMemoryHistory()
    _held(h)
    ctx = fake_context(config_env("dev"), history=h)
    res = locks.unlock(ctx, "holder killed", "bob@test-host", T0 + timedelta(minutes=5))
    assert res.broken["holder"] == "20260101T000000Z-aaaaaa" and res.closed is None
    ev = [e for e in h.events() if e["kind"] == "lock_broken"][0]
    assert ev["who"] == "bob@test-host" and ev["reason"] == "holder killed"
    assert ev["held_by"] == "alice@test-host" and ev["held_seconds"] == 180
    out = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert out.outcome.state.phase == "succeeded" and h.lock() is None
    assert locks.unlock(ctx, "again", "bob", T0).broken is None  # not locked: nothing to do


def test_unlock_refuses_to_strand_a_canary_that_moved_traffic_and_closes_one_that_did_not():
    h = InMemoryHistory()
    lock = _held(h)
    h.create(_dep(lock["holder"]))
    ctx = fake_context(config_env("dev"), history=h)
    with pytest.raises(UsageError) as exc:
        locks.unlock(ctx, "stale", "bob", T0)
    assert "strand its traffic" in exc.value.one_line() and "stageflow rollback dev" in exc.value.one_line()
    assert h.lock() is not None and not h.events()  # nothing changed
    h2 = InMemoryHistory()
    lock2 = _held(h2)
    h2.create(_unpublished(lock2))
    ctx2 = fake_context(config_env("dev"), history=h2)
    res = locks.unlock(ctx2, "killed while publishing", "bob", T0)
    assert res.closed == lock2["holder"] and h2.get(lock2["holder"]).status == "failed"
    assert h2.lock() is None and h2.in_flight() is None
    with pytest.raises(UsageError):
        locks.unlock(ctx2, "  ", "bob", T0)


def _unpublished(lock) -> Deployment:
    d = _dep(lock["holder"], phase="publishing", weight=0)
    return replace(d, version="", previous_version=None, state=State(phase="pending", weight=0))


def test_a_resumed_run_takes_its_own_lock_again():
    h = InMemoryHistory()
    h.acquire_lock("d1", "alice", T0)
    h.pid = 5151
    h.acquire_lock("d1", "bob", T0)  # the same deployment: refreshed, names the new process
    assert h.lock()["pid"] == 5151 and h.lock()["who"] == "bob"
    with pytest.raises(LockedError):
        h.acquire_lock("d2", "carol", T0)


# --- issue 24 finding 9: unlock refuses while the holder is alive ---------------------------------------


def test_unlock_refuses_while_the_holder_runs_on_this_host_unless_forced(monkeypatch):
    import socket

    h = InMemoryHistory()
    h.host = socket.gethostname()  # the holder runs here
    _held(h)
    ctx = fake_context(config_env("dev"), history=h)
    with pytest.raises(LockedError) as exc:
        locks.unlock(ctx, "looks stuck", "bob", T0, alive=lambda pid: pid == 4242)
    line = exc.value.one_line()
    assert exc.value.exit_code == ExitCode.LOCKED and "pid 4242" in line and "is running" in line
    assert "--force --reason" in line
    assert h.lock() is not None and not h.events()  # nothing changed
    res = locks.unlock(ctx, "it hangs on a dead socket", "bob", T0, force=True, alive=lambda pid: True)
    assert res.broken["holder"] == "20260101T000000Z-aaaaaa" and h.lock() is None
    (ev,) = [e for e in h.events() if e["kind"] == "lock_broken"]
    assert (
        ev["forced"] is True
        and "pid 4242" in ev["holder_alive"]
        and ev["reason"] == "it hangs on a dead socket"
    )


def test_unlock_of_a_dead_holder_on_this_host_needs_no_force():
    import socket

    h = InMemoryHistory()
    h.host = socket.gethostname()
    _held(h)
    res = locks.unlock(
        fake_context(config_env("dev"), history=h), "killed", "bob", T0, alive=lambda pid: False
    )
    assert res.broken is not None and "forced" not in h.events()[0]


def test_another_hosts_holder_is_alive_while_its_heartbeat_is_fresh():
    from datetime import UTC, datetime

    from stageflow.history.locks import HEARTBEAT_FRESH, holder_alive

    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    lock = {"holder": "d", "host": "ci-runner-7", "pid": "99", "heartbeat": iso(now - timedelta(seconds=40))}
    never = pytest.fail
    assert "ci-runner-7" in holder_alive(lock, alive=never, host="laptop", now=now)
    old = {**lock, "heartbeat": iso(now - HEARTBEAT_FRESH - timedelta(seconds=1))}
    assert holder_alive(old, alive=never, host="laptop", now=now) is None
    assert holder_alive({**lock, "heartbeat": None}, alive=never, host="laptop", now=now) is None
    assert holder_alive({**lock, "heartbeat": "garbage"}, alive=never, host="laptop", now=now) is None
