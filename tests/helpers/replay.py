"""A canary replayed in-process through the machine that ships traffic.

``replay(scenario)`` runs ``deploy.canary.run_start`` on the in-memory fakes of ``tests/fakes.py`` and a
virtual clock: the driver performs ``deploy.machine.transition``'s actions, the real ``GateReader`` and
judge read the scenario's traffic, which the simulator's ``SimulatorFeed`` makes minute by minute (into
memory instead of the emulator's CloudWatch). No emulator, no policy of its own: steps, bakes, looks,
extensions and holds are the machine's. The scenario unit tests and ``bench/judge_bench.py`` use it;
``stageflow rehearse`` runs the same driver against the emulator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache

from stageflow.config import Approvals, CanaryPolicy, CanaryStep, EnvironmentConfig, Gates
from stageflow.deploy import canary
from stageflow.deploy.gates import GateReader, default_judge
from stageflow.errors import ReleaseRejected
from stageflow.history import parse_iso
from stageflow.local.simulator import Scenario, SimulatorFeed
from stageflow.metrics.interface import MetricSource, MinuteStats, Verdict, VersionSeries
from stageflow.metrics.judge import naive_judge
from tests.fakes import FakeAlarms, FakeArtifact, config_env, fake_context

# The prod policy: 10 % for 15 min, 50 % for 15 min, then 100 % monitored for 30 min.
PROD_POLICY = CanaryPolicy(
    steps=(CanaryStep(10, 15.0), CanaryStep(50, 15.0), CanaryStep(100)), post_promotion_minutes=30.0
)
NAIVE_INTERVAL_SECONDS = 7 * 24 * 3600  # longer than any window: the one look is at its end


@dataclass
class ReplayResult:
    verdict: str  # "promoted" | "rolled_back" | "held" (paused for a person)
    decided_at_minute: int | None  # canary minutes at the last look (the decision)
    final_weight: int
    reasons: tuple[str, ...] = ()  # the deciding look's reasons
    extensions: int = 0  # bake extensions of the step it ended in
    looks: int = 0
    verdicts: list[tuple[int, dict]] = field(default_factory=list)  # (canary minute, recorded verdict)


class _NoCloudWatch:
    def put_metric_data(self, **_kwargs) -> None:
        pass


class FeedSource(MetricSource):
    """What the simulator's feed published, read back as the local metric source would."""

    name = "simulator"

    def __init__(self, feed: SimulatorFeed):
        self.feed = feed
        self._seen = 0
        self._stats: dict[tuple[str, datetime], MinuteStats] = {}

    def series(self, function, alias, version, start, end) -> VersionSeries:
        for t, v, _role, sample in self.feed.published[self._seen :]:
            self._stats[(v, t)] = sample.stats(t)
        self._seen = len(self.feed.published)
        rows, t = [], start
        while t + timedelta(minutes=1) <= end:
            rows.append(self._stats.get((version, t)) or MinuteStats(t, 0, 0))
            t += timedelta(minutes=1)
        return VersionSeries(version, tuple(rows), self.name)


@cache
def _base_env() -> EnvironmentConfig:
    return config_env("dev")


def replay(
    scenario: Scenario,
    policy: CanaryPolicy = PROD_POLICY,
    gates: Gates | None = None,
    *,
    judge: Callable[..., Verdict] | None = None,
) -> ReplayResult:
    """Run ``scenario`` through ``policy`` (no approvals) with ``judge`` (the canary judge by default)."""
    env = replace(_base_env(), canary=policy, approvals=Approvals(), gates=gates or Gates())
    ctx = fake_context(env, alarms=FakeAlarms())
    start = ctx.clock.now()
    feed = SimulatorFeed(
        scenario, _NoCloudWatch(), ctx.outputs.function_name, ctx.outputs.alias_name, start=start
    )
    ctx.feed_for = lambda _scenario, _start: feed
    ctx.gates = GateReader(
        source=FeedSource(feed),
        alarms=None,
        alarm_names=(),
        gates=env.gates,
        function=ctx.outputs.function_name,
        alias=ctx.outputs.alias_name,
        judge=judge or default_judge(),
    )
    with contextlib.suppress(ReleaseRejected):  # a rollback: the outcome is read from the history
        canary.run_start(ctx, FakeArtifact())
    (dep,) = ctx.history.deps.values()
    return _result(dep, ctx.history.verdicts.get(dep.deployment_id, []))


def _result(dep, verdicts: list[dict]) -> ReplayResult:
    state = dep.state
    origin = parse_iso(state["canary_start"]) if state.get("canary_start") else None
    looks = (
        [(int((parse_iso(v["at"]) - origin).total_seconds() // 60), v) for v in verdicts] if origin else []
    )
    outcome = {"succeeded": "promoted", "rolled_back": "rolled_back", "awaiting_approval": "held"}
    last = looks[-1] if looks else (None, {})
    return ReplayResult(
        verdict=outcome.get(state["phase"], state["phase"]),
        decided_at_minute=last[0],
        final_weight=last[1].get("weight", state["weight"]),
        reasons=tuple(last[1].get("reasons", ())),
        extensions=state["extensions"],
        looks=len(looks),
        verdicts=looks,
    )


def naive_replay(scenario: Scenario, policy: CanaryPolicy = PROD_POLICY, gates: Gates | None = None):
    """The design's naive policy on the same machine: one look at the end of each window, absolute
    thresholds on the window's point values, no statistics and no baseline (``naive_judge``)."""

    def judge(canary_series, _stable, step_gates, alarms, **_kw):
        return naive_judge(canary_series, step_gates, alarms)

    return replay(
        scenario, replace(policy, check_interval_seconds=NAIVE_INTERVAL_SECONDS), gates, judge=judge
    )
