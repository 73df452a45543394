"""In-memory fakes of the core's ports (stageflow.ports, stageflow.metrics.interface).

They keep the contracts the real implementations keep — the seq check of history updates
(ConcurrentUpdate), the deploy lock (LockedError), alias weights, "publish only when something changed"
— so the driver, canary, rollback and pipeline can be tested in milliseconds without the emulator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from stageflow.clock import VirtualClock
from stageflow.config import Gates
from stageflow.deploy.canary import Context
from stageflow.deploy.gates import GateReader, default_judge
from stageflow.deploy.publish import Published
from stageflow.deploy.records import ACTIVE, Deployment, VerdictRecord
from stageflow.deploy.traffic import AliasState
from stageflow.errors import EnvironmentFailure, LockedError, UsageError
from stageflow.history import ConcurrentUpdate, lock_age_seconds, lock_hint, lock_holder_text
from stageflow.invokecheck import FAILED, PASSED, InvokeResult
from stageflow.isotime import iso
from stageflow.metrics.interface import AlarmSource, MetricSource, MinuteStats, TrafficFeed, VersionSeries
from stageflow.outputs import DeployOutputs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class InMemoryHistory:
    def __init__(self, environment: str = "dev"):
        self.environment = environment
        self.deps: dict[str, Deployment] = {}
        self._lock: dict | None = None
        self._events: list[dict] = []
        self._incidents: dict[str, dict] = {}
        self.verdicts: dict[str, list[VerdictRecord]] = {}
        self.fail_updates = 0  # the next N updates raise EnvironmentFailure (an outage)
        self.host, self.pid = "test-host", 4242  # what a lock records about its holder
        self.wall_now: datetime | None = None  # the wall clock of lock ages (None: the real one)

    def acquire_lock(self, deployment_id, who, now):
        if self._lock is not None and self._lock["holder"] != deployment_id:
            lk = self._lock
            raise LockedError(
                f"environment {self.environment}",
                lock_holder_text(lk, self.wall_now),
                lock_hint(self.environment),
            )
        self._lock = {
            "holder": deployment_id,
            "who": who,
            "since": iso(now),
            "acquired": iso(self.wall_now or datetime.now(UTC)),
            "host": self.host,
            "pid": self.pid,
        }

    def lock(self):
        return dict(self._lock) if self._lock else None

    def release_lock(self, deployment_id):
        if self._lock and self._lock["holder"] == deployment_id:
            self._lock = None
            return True
        return False

    def break_lock(self, reason, who, now, *, forced=None, expect=None):
        if not reason.strip():
            raise UsageError("breaking a lock needs a reason")
        held, self._lock = self._lock, None
        if held:
            age = lock_age_seconds(held, self.wall_now)
            self.record_event(
                "lock_broken",
                now,
                {
                    "holder": held["holder"],
                    "reason": reason,
                    "who": who,
                    "held_by": held.get("who"),
                    "held_seconds": round(age) if age is not None else None,
                    **({"forced": True, "holder_alive": forced} if forced else {}),
                },
            )
        return held

    def create(self, dep):
        assert dep.deployment_id not in self.deps
        self.deps[dep.deployment_id] = dep

    def get(self, deployment_id):
        return self.deps.get(deployment_id)

    def update(self, dep, *, transition=None, verdict=None, **changes):
        if self.fail_updates:
            self.fail_updates -= 1
            raise EnvironmentFailure("deployment history: ServiceUnavailable (injected)")
        stored = self.deps[dep.deployment_id]
        if stored.seq != dep.seq:
            raise ConcurrentUpdate(f"deployment {dep.deployment_id} was changed by another run")
        new = dep.with_changes(transition=transition, verdict=verdict, keep_verdicts=1, **changes)
        if verdict is not None:
            self.verdicts.setdefault(dep.deployment_id, []).append(verdict)
        self.deps[dep.deployment_id] = new
        return new

    def recent_verdicts(self, deployment_id, n=3):
        return list(self.verdicts.get(deployment_id, []))[-n:]

    def all_verdicts(self, deployment_id, limit=500):
        return list(self.verdicts.get(deployment_id, []))[:limit]

    def list(self, limit=20):
        return [d for _, d in sorted(self.deps.items(), reverse=True)][:limit]

    def by_status(self, status, limit=10):
        return [d for d in self.list(1000) if d.status == status][:limit]

    def in_flight(self):
        for d in self.list(1000):
            if d.status in ACTIVE:
                return d
        return None

    def last_known_good(self, exclude_version=None):
        for d in self.by_status("succeeded", 25):
            if d.version != exclude_version and not d.extra.get("marked_bad"):
                return d
        return None

    def record_event(self, kind, now, data):
        self._events.append({"kind": kind, "at": iso(now), **dict(data)})

    def events(self, limit=50):
        return list(reversed(self._events))[:limit]

    freeze: dict | None = None

    def freeze_item(self):
        return dict(self.freeze) if self.freeze else None

    def set_freeze(self, until, reason, who, now):
        self.freeze = {"until": iso(until), "reason": reason, "by": who, "at": iso(now)}
        self.record_event("freeze", now, self.freeze)

    def record_incident(self, incident):
        self._incidents[incident["key"]] = dict(incident)

    def incident(self, key):
        return self._incidents.get(key)

    def incidents(self, limit=20):
        return [self._incidents[k] for k in sorted(self._incidents, reverse=True)][:limit]

    def incidents_since(self, since):
        stamp = since.strftime("%Y%m%dT%H%M%SZ")
        return [self._incidents[k] for k in sorted(self._incidents) if k >= stamp]

    def clear_freeze(self, reason, who, now):
        held, self.freeze = self.freeze, None
        if held:
            self.record_event("unfreeze", now, {"reason": reason, "by": who, "lifted": held["reason"]})
        return held

    def since(self, since):
        deps = [
            d for _, d in sorted(self.deps.items()) if d.deployment_id >= since.strftime("%Y%m%dT%H%M%SZ")
        ]
        return deps, [e for e in self._events if e["at"] >= iso(since)]


class FakeRouter:
    """An alias with versions; ``fail_restores`` makes the next N restores fail (rollback failure)."""

    def __init__(self, function="svc-dev", alias="live", versions=("1",), primary="1"):
        self.function, self.alias = function, alias
        self.versions = list(versions)
        self.primary = primary
        self.extra: dict[str, float] = {}
        self.fail_restores = 0
        self.moves: list[dict[str, int]] = []
        self.set_canary_calls: list[tuple[str, str, int]] = []

    def state(self):
        return AliasState(self.primary, dict(self.extra))

    def set_canary(self, stable, canary, weight):
        self.set_canary_calls.append((stable, canary, weight))
        if weight >= 100:
            return self.restore(canary)
        self.primary = stable
        self.extra = {canary: round(weight / 100, 4)} if weight > 0 else {}
        self.moves.append(self.state().weights)
        return self.state()

    def restore(self, version):
        if self.fail_restores:
            self.fail_restores -= 1
            raise EnvironmentFailure(f"lambda {self.function}:{self.alias}: ServiceUnavailable (injected)")
        self.primary, self.extra = version, {}
        self.moves.append(self.state().weights)
        return self.state()

    def version_exists(self, version):
        return version in self.versions

    def require_version(self, version):
        if version not in self.versions:
            raise UsageError(f"version {version!r} of {self.function} does not exist")


class FakePublisher:
    """Publishes when the artifact's code or the configuration differs from what the alias serves."""

    def __init__(self, router: FakeRouter, code: str = "code-v1", config: Mapping | None = None):
        self.router = router
        self.code = {router.primary: code}
        self.config = {router.primary: dict(config or {})}
        self.latest_config: dict = dict(config or {})

    def publish(self, artifact, *, description=""):
        serving = self.router.primary
        changed = []
        if self.code.get(serving) != artifact.code_sha256:
            changed.append("code")
        if self.config.get(serving) != self.latest_config:
            changed.append("environment")
        if not changed and self.router.state().settled:
            return Published(None, serving, artifact.code_sha256, f"already serves this (version {serving})")
        new = str(max(int(v) for v in self.router.versions) + 1)
        self.router.versions.append(new)
        self.code[new] = artifact.code_sha256
        self.config[new] = dict(self.latest_config)
        return Published(new, serving, artifact.code_sha256, f"published version {new}", tuple(changed))


class FakeCheck:
    """The FunctionCheck port: every qualifier passes unless ``failing`` names it (with the function's
    error line) or ``raises`` is set (the check could not be made); ``calls`` lists what was invoked."""

    def __init__(self, function: str = "svc-dev"):
        self.function = function
        self.failing: dict[str, str] = {}
        self.raises: Exception | None = None
        self.calls: list[str] = []

    def check(self, qualifier):
        self.calls.append(qualifier)
        if self.raises is not None:
            raise self.raises
        if qualifier in self.failing:
            return InvokeResult(self.function, qualifier, FAILED, self.failing[qualifier], qualifier)
        return InvokeResult(self.function, qualifier, PASSED, "", qualifier)


class RecordingNotifier:
    def __init__(self):
        self.messages = []

    def send(self, msg):
        self.messages.append(msg)

    @property
    def kinds(self):
        return [m.kind for m in self.messages]


class RecordingObserver:
    """A progress observer that keeps every line; ``wait`` sleeps the (virtual) clock."""

    def __init__(self):
        self.lines: list[str] = []
        self.results: list = []

    def info(self, phase, subject, message):
        self.lines.append(f"{phase} {subject}: {message}")

    def warn(self, message):
        self.lines.append(f"warning: {message}")

    def child(self, line):
        self.lines.append(line)

    def wait(self, clock, seconds, label, progress=None):
        if seconds > 0:
            clock.sleep(seconds)

    def result(self, human, data):
        self.results.append((human, data))


class ScriptedSource(MetricSource):
    """Per-minute stats from a function of (version, role-agnostic minute start) → MinuteStats args."""

    name = "scripted"

    def __init__(self, minute: Callable[[str, datetime], tuple[int, int, float, float, float] | None]):
        self.minute = minute
        self.calls = 0
        self.fail_next = 0

    def series(self, function, alias, version, start, end):
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise EnvironmentFailure("cloudwatch: ThrottlingException (injected)")
        out = []
        t = start.replace(second=0, microsecond=0)
        from datetime import timedelta

        while t < end:
            m = self.minute(version, t)
            if m is not None:
                out.append(MinuteStats(t, *m))
            t += timedelta(minutes=1)
        return VersionSeries(version, tuple(out), self.name)


def healthy(version, t):
    """600 invocations a minute, no errors, p95 120 ms."""
    return (600, 0, 50.0, 120.0, 200.0)


def failing_canary(canary_versions: Sequence[str]):
    def minute(version, t):
        if version in canary_versions:
            return (600, 120, 50.0, 120.0, 200.0)
        return healthy(version, t)

    return minute


class FakeAlarms(AlarmSource):
    def __init__(self, firing: Sequence[str] = ()):
        self.now_firing = list(firing)

    def firing(self, names):
        return [n for n in names if n in self.now_firing]


class NullFeed(TrafficFeed):
    def __init__(self):
        self.calls = []

    def run_until(self, now, weights, roles):
        self.calls.append((now, dict(weights), dict(roles)))


class FakeArtifact:
    def __init__(self, code: str = "code-v2"):
        self.code_sha256 = code
        self.digest = "sha256:" + hashlib.sha256(code.encode()).hexdigest()
        self.data = code.encode()
        self.files = 1


def fake_context(
    env_config,
    *,
    service: str = "svc",
    history: InMemoryHistory | None = None,
    router: FakeRouter | None = None,
    publisher: FakePublisher | None = None,
    source: MetricSource | None = None,
    alarms: FakeAlarms | None = None,
    notifier: RecordingNotifier | None = None,
    observer: RecordingObserver | None = None,
    clock: VirtualClock | None = None,
    gates: Gates | None = None,
    check=None,
) -> Context:
    router = router or FakeRouter()
    history = history or InMemoryHistory(env_config.name)
    clock = clock or VirtualClock(T0)
    out = DeployOutputs(
        router.function, router.alias, ("svc-errors-dev",), "arn:aws:sns:us-east-1:1:t", "tbl"
    )
    reader = GateReader(
        source=source or ScriptedSource(healthy),
        alarms=alarms or FakeAlarms(),
        alarm_names=out.alarm_names,
        gates=gates or env_config.gates,
        function=out.function_name,
        alias=out.alias_name,
        judge=default_judge(),
    )
    feed = NullFeed()
    ctx = Context(
        env=env_config,
        service=service,
        outputs=out,
        history=history,
        traffic=router,
        publisher=publisher or FakePublisher(router),
        function_check=check or FakeCheck(router.function),
        notifier=notifier or RecordingNotifier(),
        gates=reader,
        reporter=observer or RecordingObserver(),
        clock_for=lambda: clock,
        feed_for=lambda scenario, start: feed,
    )
    ctx.feed = feed  # for assertions
    return ctx


def config_env(name: str = "dev", root: Path | None = None):
    """An environment's settings from the repository's stageflow.toml."""
    from stageflow.config import load

    repo = Path(__file__).resolve().parents[1]
    return load(root or repo / "stageflow.toml").env(name)


class PerFunctionSource(ScriptedSource):
    """Per-minute stats from a function of (function, version, minute start): one function of a
    release can fail its gates while the other passes."""

    def __init__(self, minute: Callable[[str, str, datetime], tuple[int, int, float, float, float] | None]):
        super().__init__(lambda version, t: None)
        self.by_function = minute

    def series(self, function, alias, version, start, end):
        self.minute = lambda v, t: self.by_function(function, v, t)
        return super().series(function, alias, version, start, end)


def release_context(env_config, *, functions=(("api", "1"), ("worker", "3")), source=None, **kwargs):
    """A context of several functions (``[functions.KEY]``), each with its own alias (``functions``:
    key and the version it serves), publisher, check and gate reader; ``ctx.routers``, ``ctx.publishers``
    and ``ctx.checks`` by key."""
    from dataclasses import replace

    from stageflow.deploy.release import Member, Release

    routers = {
        k: FakeRouter(f"svc-{k}-dev", "live", tuple(str(i) for i in range(1, int(v) + 1)), v)
        for k, v in functions
    }
    publishers = {k: FakePublisher(r) for k, r in routers.items()}
    checks = {k: FakeCheck(r.function) for k, r in routers.items()}
    first = functions[0][0]
    ctx = fake_context(
        env_config,
        router=routers[first],
        publisher=publishers[first],
        check=checks[first],
        source=source,
        **kwargs,
    )
    ctx.functions = Release(
        tuple(
            Member(
                k,
                routers[k],
                publisher=publishers[k],
                check=checks[k],
                gates=replace(ctx.gates, function=routers[k].function),
                feed_for=ctx.feed_for,
            )
            for k, _v in functions
        )
    )
    ctx.routers, ctx.publishers, ctx.checks = routers, publishers, checks
    return ctx
