"""An in-process canary replay: a scenario's simulated traffic judged minute by minute over a policy.

No emulator and no driver: the simulator's numbers go straight into the judge. The benchmark uses it
to judge thousands of seeded canaries in seconds, and the unit tests use it to check every shared
scenario's expected verdict. The real rehearsal (``stageflow rehearse``) runs the canary driver against
the emulator instead; this module models the same policy: for each step, bake ``bake_minutes`` looking
once a minute, extend a bake that ends without enough data (up to ``max_extensions`` per step, then
hold for a person), and after 100 % keep watching for ``post_promotion_minutes``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from stageflow.config import CanaryPolicy, Gates
from stageflow.local.simulator import Scenario, TrafficGenerator
from stageflow.metrics.interface import MinuteStats, Verdict, VersionSeries

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STABLE, CANARY = "1", "2"


@dataclass(frozen=True)
class Window:
    weight: int
    minutes: int


@dataclass
class ReplayResult:
    verdict: str  # "promoted" | "rolled_back" | "held"
    decided_at_minute: int | None  # canary minutes at the decision (rollback or promotion)
    final_weight: int
    reasons: tuple[str, ...] = ()
    extensions: int = 0
    looks: int = 0
    verdicts: list[tuple[int, Verdict]] = field(default_factory=list)


def policy_windows(policy: CanaryPolicy) -> list[Window]:
    """Bake windows of a canary policy: each step with its bake, then the post-promotion monitoring."""
    out = [Window(s.weight, int(round(s.bake_minutes))) for s in policy.steps if s.weight < 100]
    out.append(Window(100, int(round(policy.post_promotion_minutes))))
    return out


PROD_WINDOWS = [Window(10, 15), Window(50, 15), Window(100, 30)]

# judge_fn(canary, stable, gates, alarms, window_complete, relative, *, history, weight) -> Verdict;
# ``relative`` is (canary, stable) over every minute since the canary first took traffic, or None in the
# first step; ``history`` the same for the change-point checks (stable None at 100 %), ``weight`` the
# canary's percent of traffic. ``gates`` are the step's gates (``Gates.for_weight``).
JudgeFn = Callable[..., Verdict]


def _our_judge(canary, stable, gates, alarms, complete, relative=None, *, history=None, weight=None):
    from stageflow.metrics.judge import judge

    return judge(
        canary,
        stable,
        gates,
        alarms,
        window_complete=complete,
        relative=relative,
        history=history,
        weight=weight,
    )


def replay(
    scenario: Scenario,
    windows: Sequence[Window] = tuple(PROD_WINDOWS),
    gates: Gates | None = None,
    *,
    max_extensions: int = 2,
    judge_fn: JudgeFn | None = None,
    every_minute: bool = True,
    keep_verdicts: bool = False,
) -> ReplayResult:
    """Run ``scenario`` through ``windows``. ``every_minute=False`` judges only at window ends (the
    design's naive policy). As the driver does, the absolute gates see the current window (extensions
    included) and, from the second step on, the relative checks every minute since minute 0."""
    base_gates = gates or Gates()
    judge_fn = judge_fn or _our_judge
    gen = TrafficGenerator(scenario)
    minute = 0
    looks = 0
    total_ext = 0
    kept: list[tuple[int, Verdict]] = []
    roles = {STABLE: "stable", CANARY: "canary"}
    c_all: list[MinuteStats] = []  # every minute since the canary first took traffic
    s_all: list[MinuteStats] = []
    for w in windows:
        gates = base_gates.for_weight(w.weight)
        c_min: list[MinuteStats] = []  # the current window's minutes
        s_min: list[MinuteStats] = []
        length = max(1, w.minutes)
        ext = 0
        t = 0
        while True:
            start = T0 + timedelta(minutes=minute)
            samples = gen.minute(minute, {STABLE: 100 - w.weight, CANARY: w.weight}, roles)
            c_min.append(samples[CANARY].stats(start))
            s_min.append(samples[STABLE].stats(start))
            c_all.append(c_min[-1])
            s_all.append(s_min[-1])
            minute += 1
            t += 1
            complete = t >= length
            if not every_minute and not complete:
                continue
            canary = VersionSeries(CANARY, tuple(c_min), "simulator")
            stable = VersionSeries(STABLE, tuple(s_min), "simulator") if w.weight < 100 else None
            relative = None
            if stable is not None and len(c_all) > len(c_min):
                relative = (
                    VersionSeries(CANARY, tuple(c_all), "simulator"),
                    VersionSeries(STABLE, tuple(s_all), "simulator"),
                )
            history = (
                VersionSeries(CANARY, tuple(c_all), "simulator"),
                VersionSeries(STABLE, tuple(s_all), "simulator") if stable is not None else None,
            )
            v = judge_fn(canary, stable, gates, (), complete, relative, history=history, weight=w.weight)
            looks += 1
            if keep_verdicts:
                kept.append((minute, v))
            if v.decision == "rollback":
                return ReplayResult("rolled_back", minute, w.weight, v.reasons, total_ext, looks, kept)
            if not complete:
                continue
            if v.decision == "extend":
                if ext >= max_extensions:
                    return ReplayResult("held", minute, w.weight, v.reasons, total_ext, looks, kept)
                ext += 1
                total_ext += 1
                length += max(1, w.minutes)
                continue
            break
    return ReplayResult("promoted", minute, 100, (), total_ext, looks, kept)


def naive_replay(scenario: Scenario, windows: Sequence[Window] = tuple(PROD_WINDOWS), gates=None):
    from stageflow.metrics.judge import naive_judge

    def fn(canary, stable, gates, alarms, complete, relative=None, **_kw):
        return naive_judge(canary, gates, alarms)

    return replay(scenario, windows, gates, judge_fn=fn, every_minute=False)
