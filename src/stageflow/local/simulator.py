"""The traffic simulator: production traffic through a Lambda alias, minute by minute, from a scenario.

Local mode has no live traffic. A scenario (format: ``scenarios/README.md``) says how the stable and
the canary version behave; :class:`TrafficGenerator` turns it into per-minute numbers, deterministic
for a seed, and :class:`SimulatorFeed` writes them into the emulator at virtual time exactly as Lambda
publishes them (``AWS/Lambda`` Invocations, Errors, Duration per executed version of the alias), plus
each minute's p50/p95/p99 in ``Stageflow/Simulator`` because the emulator computes no percentiles.

Model, per virtual minute and version:
- invocations: ``traffic_per_minute`` split by the current weights (the canary gets
  ``round(traffic * weight / 100)``, the stable version the rest);
- errors ~ Binomial(invocations, error_rate);
- latencies ~ LogNormal(mu = ln median, sigma = ln(p95 / median) / z_0.95), one draw per invocation,
  multiplied by ``cold_start.latency_factor`` during the canary's first ``cold_start.minutes`` minutes;
- ``changes`` apply from their ``at_minute`` on.
Minute 0 is the first minute in which the canary takes traffic. The random stream of a minute depends
only on (seed, minute, role), so the same scenario and seed always give the same numbers, however the
minutes are requested.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stageflow.errors import UsageError
from stageflow.metrics.interface import MinuteStats, TrafficFeed
from stageflow.metrics.lambda_metrics import (
    DURATION,
    ERRORS,
    INVOCATIONS,
    LAMBDA_NAMESPACE,
    PERCENTILES_METRIC,
    SIMULATOR_NAMESPACE,
    lambda_dimensions,
)

Role = Literal["stable", "canary"]
ROLES: tuple[Role, ...] = ("stable", "canary")
Z95 = 1.6448536269514722  # the standard normal's 95th percentile

MAX_DATUMS_PER_CALL = 500  # CloudWatch takes up to 1000 per PutMetricData; stay well under 1 MB


MAX_SCENARIO_BYTES = 256 * 1024  # a scenario is a few hundred bytes; this is generous
MAX_NAME_CHARS = 200  # it is printed, recorded in the history and in reports


class ScenarioError(UsageError):
    """A scenario file is malformed: names the file and the key (exit code 2)."""

    def __init__(self, source: str, key: str, reason: str):
        super().__init__(f"scenario {source}: {key}: {reason}", "see scenarios/README.md for the format")
        self.source, self.key, self.reason = source, key, reason


# -- the scenario ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Behaviour:
    error_rate: float
    median_ms: float
    p95_ms: float

    @property
    def sigma(self) -> float:
        return math.log(self.p95_ms / self.median_ms) / Z95


@dataclass(frozen=True)
class Change:
    version: Role
    at_minute: int
    error_rate: float | None = None
    median_ms: float | None = None
    p95_ms: float | None = None


@dataclass(frozen=True)
class ColdStart:
    minutes: int
    latency_factor: float


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    traffic_per_minute: int
    stable: Behaviour
    canary: Behaviour
    changes: tuple[Change, ...] = ()
    cold_start: ColdStart | None = None
    expect: Literal["promote", "rollback"] | None = None
    source: str = "<scenario>"
    # several functions, one release: ``functions.KEY`` overrides (stable/canary/changes/cold_start) for
    # the function of that key in stageflow.toml; the others play the scenario as written
    functions: tuple[tuple[str, Scenario], ...] = ()

    def for_function(self, key: str | None) -> Scenario:
        """The scenario the function ``key`` plays (its ``functions.KEY`` override, else this one)."""
        return dict(self.functions).get(key, self) if key else self

    def behaviour(self, role: Role, minute: int) -> Behaviour:
        """How ``role`` behaves at canary minute ``minute`` (changes applied in order of at_minute)."""
        b = self.stable if role == "stable" else self.canary
        for ch in sorted(self.changes, key=lambda c: c.at_minute):
            if ch.version == role and minute >= ch.at_minute:
                b = Behaviour(
                    ch.error_rate if ch.error_rate is not None else b.error_rate,
                    ch.median_ms if ch.median_ms is not None else b.median_ms,
                    ch.p95_ms if ch.p95_ms is not None else b.p95_ms,
                )
        return b

    def with_seed(self, seed: int) -> Scenario:
        return replace(self, seed=seed)


def _num(r: dict, key: str, name: str, src: str, *, lo: float, hi: float | None = None, lo_open=False):
    if name not in r:
        raise ScenarioError(src, f"{key}{name}", "is required")
    v = r[name]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ScenarioError(src, f"{key}{name}", f"must be a number, got {json.dumps(v)}")
    if (v <= lo) if lo_open else (v < lo):
        raise ScenarioError(src, f"{key}{name}", f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
    if hi is not None and v > hi:
        raise ScenarioError(src, f"{key}{name}", f"must be <= {hi:g}, got {v:g}")
    return v


def _int(r: dict, key: str, name: str, src: str, *, lo: int, hi: int | None = None) -> int:
    if name not in r:
        raise ScenarioError(src, f"{key}{name}", "is required")
    v = r[name]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ScenarioError(src, f"{key}{name}", f"must be an integer, got {json.dumps(v)}")
    if v < lo or (hi is not None and v > hi):
        raise ScenarioError(src, f"{key}{name}", f"must be between {lo} and {hi}, got {v}")
    return v


def _check_keys(r: Any, key: str, src: str, allowed: set[str]) -> dict:
    if not isinstance(r, dict):
        raise ScenarioError(src, key.rstrip(".") or "<top>", f"must be an object, got {json.dumps(r)[:40]}")
    for k in r:
        if k not in allowed:
            raise ScenarioError(src, f"{key}{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return r


def _latency(r: Any, key: str, src: str) -> tuple[float, float]:
    r = _check_keys(r, key + ".", src, {"median", "p95"})
    median = float(_num(r, key + ".", "median", src, lo=0, hi=900_000, lo_open=True))
    p95 = float(_num(r, key + ".", "p95", src, lo=0, hi=900_000, lo_open=True))
    if p95 <= median:
        raise ScenarioError(src, f"{key}.p95", f"must be greater than the median ({p95:g} <= {median:g})")
    return median, p95


def _behaviour(r: Any, key: str, src: str) -> Behaviour:
    r = _check_keys(r, key + ".", src, {"error_rate", "latency_ms"})
    rate = float(_num(r, key + ".", "error_rate", src, lo=0, hi=1))
    if "latency_ms" not in r:
        raise ScenarioError(src, f"{key}.latency_ms", "is required")
    median, p95 = _latency(r["latency_ms"], f"{key}.latency_ms", src)
    return Behaviour(rate, median, p95)


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a scenario document strictly; a bad one raises :class:`ScenarioError` naming the key."""
    src = source
    allowed = {"name", "seed", "traffic_per_minute", "stable", "canary", "changes", "cold_start", "expect"}
    r = _check_keys(data, "", src, allowed | {"functions"})
    name = r.get("name", Path(source).stem)
    if isinstance(name, str) and (len(name) > MAX_NAME_CHARS or not name.isprintable()):
        raise ScenarioError(src, "name", f"must be printable and at most {MAX_NAME_CHARS} characters")
    if not isinstance(name, str) or not name:
        raise ScenarioError(src, "name", "must be a non-empty string")
    seed = _int(r, "", "seed", src, lo=0, hi=2**32 - 1)
    traffic = _int(r, "", "traffic_per_minute", src, lo=0, hi=10_000_000)
    for role in ROLES:
        if role not in r:
            raise ScenarioError(src, role, "is required")
    stable = _behaviour(r["stable"], "stable", src)
    canary = _behaviour(r["canary"], "canary", src)

    changes: list[Change] = []
    raw_changes = r.get("changes", [])
    if not isinstance(raw_changes, list):
        raise ScenarioError(src, "changes", "must be an array")
    for i, ch in enumerate(raw_changes):
        k = f"changes[{i}]"
        ch = _check_keys(ch, k + ".", src, {"version", "at_minute", "error_rate", "latency_ms"})
        version = ch.get("version")
        if version not in ROLES:
            raise ScenarioError(
                src, f"{k}.version", f"must be 'stable' or 'canary', got {json.dumps(version)}"
            )
        at = _int(ch, k + ".", "at_minute", src, lo=0, hi=100_000)
        if "error_rate" not in ch and "latency_ms" not in ch:
            raise ScenarioError(src, k, "must set error_rate and/or latency_ms")
        rate = float(_num(ch, k + ".", "error_rate", src, lo=0, hi=1)) if "error_rate" in ch else None
        median = p95 = None
        if "latency_ms" in ch:
            median, p95 = _latency(ch["latency_ms"], f"{k}.latency_ms", src)
        changes.append(Change(version, at, rate, median, p95))

    cold = None
    if "cold_start" in r:
        c = _check_keys(r["cold_start"], "cold_start.", src, {"minutes", "latency_factor"})
        cold = ColdStart(
            _int(c, "cold_start.", "minutes", src, lo=0, hi=1000),
            float(_num(c, "cold_start.", "latency_factor", src, lo=0, hi=1000, lo_open=True)),
        )
    expect = r.get("expect")
    if expect is not None and expect not in ("promote", "rollback"):
        raise ScenarioError(src, "expect", f"must be 'promote' or 'rollback', got {json.dumps(expect)}")
    functions = _function_overrides(r, src)
    return Scenario(name, seed, traffic, stable, canary, tuple(changes), cold, expect, source, functions)


def _function_overrides(r: dict, src: str) -> tuple[tuple[str, Scenario], ...]:
    """``functions``: ``{KEY: {stable?, canary?, changes?, cold_start?}}``, each the whole scenario with
    those keys replaced (errors name ``functions.KEY.…``)."""
    out, base, raw = [], {k: v for k, v in r.items() if k != "functions"}, r.get("functions", {})
    keys = set(raw) if isinstance(raw, dict) else set()
    for key, over in _check_keys(raw, "functions.", src, keys).items():
        over = _check_keys(over, f"functions.{key}.", src, {"stable", "canary", "changes", "cold_start"})
        try:
            out.append((key, parse_scenario({**base, **over}, src)))
        except ScenarioError as exc:
            raise ScenarioError(src, f"functions.{key}.{exc.key}", exc.reason) from None
    return tuple(out)


def load_scenario(path: str | Path, *, function: str | None = None) -> Scenario:
    """The scenario in ``path``; with ``function``, the one that function plays (``functions.KEY``)."""
    if function is not None:
        return load_scenario(path).for_function(function)
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_SCENARIO_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"scenario file {p} not found", "pass --scenario PATH to a JSON file") from None
    except OSError as exc:
        raise UsageError(f"cannot read scenario {p}: {exc.strerror}") from None
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(str(p), "<file>", f"larger than {MAX_SCENARIO_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(p), "<file>", f"not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(str(p), f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
    return parse_scenario(data, str(p))


DEFAULT_SCENARIO = parse_scenario(
    {
        "name": "healthy: canary behaves like stable (default)",
        "seed": 1,
        "traffic_per_minute": 600,
        "stable": {"error_rate": 0.005, "latency_ms": {"median": 120, "p95": 450}},
        "canary": {"error_rate": 0.005, "latency_ms": {"median": 120, "p95": 450}},
        "expect": "promote",
    },
    "<default>",
)


# -- the generator ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MinuteSample:
    """One simulated minute of one version: what Lambda would publish, plus the exact percentiles."""

    invocations: int
    errors: int
    duration_sum: float = 0.0
    duration_min: float = 0.0
    duration_max: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    def stats(self, start: datetime) -> MinuteStats:
        return MinuteStats(start, self.invocations, self.errors, self.p50_ms, self.p95_ms, self.p99_ms)


def split_traffic(total: int, weights: Mapping[str, int], roles: Mapping[str, str]) -> dict[str, int]:
    """Invocations per version: the canary gets round(total * weight / 100), the stable one the rest."""
    out: dict[str, int] = {}
    canaries = [v for v in weights if roles.get(v) == "canary"]
    stables = [v for v in weights if roles.get(v) != "canary"]
    assigned = 0
    for v in canaries:
        n = int(round(total * max(0, min(100, weights[v])) / 100.0))
        n = min(n, total - assigned)
        out[v] = n
        assigned += n
    rest = total - assigned
    stable_weight = sum(max(0, weights[v]) for v in stables)
    for i, v in enumerate(stables):
        if i == len(stables) - 1:
            out[v] = rest
        else:
            n = int(round(rest * weights[v] / stable_weight)) if stable_weight else 0
            out[v] = n
            rest -= n
    return out


class TrafficGenerator:
    """Deterministic per-minute numbers for a scenario."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario

    def _rng(self, minute: int, role: Role) -> np.random.Generator:
        # Minutes before the canary takes traffic are negative: offset into a non-negative key.
        key = [self.scenario.seed, minute + 1_000_000, ROLES.index(role)]
        return np.random.default_rng(np.random.SeedSequence(key))

    def sample(self, role: Role, minute: int, invocations: int) -> MinuteSample:
        if invocations <= 0:
            return MinuteSample(0, 0)
        b = self.scenario.behaviour(role, minute)
        rng = self._rng(minute, role)
        errors = int(rng.binomial(invocations, b.error_rate))
        lat = rng.lognormal(math.log(b.median_ms), b.sigma, size=invocations)
        cold = self.scenario.cold_start
        if role == "canary" and cold is not None and 0 <= minute < cold.minutes:
            lat = lat * cold.latency_factor
        lat = np.round(lat, 3)
        p50, p95, p99 = (round(float(x), 3) for x in np.percentile(lat, [50, 95, 99]))
        return MinuteSample(
            invocations,
            errors,
            duration_sum=round(float(lat.sum()), 3),
            duration_min=float(lat.min()),
            duration_max=float(lat.max()),
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
        )

    def minute(
        self, minute: int, weights: Mapping[str, int], roles: Mapping[str, str]
    ) -> dict[str, MinuteSample]:
        """Every version's sample for canary minute ``minute`` under ``weights``/``roles``."""
        split = split_traffic(self.scenario.traffic_per_minute, weights, roles)
        return {
            v: self.sample("canary" if roles.get(v) == "canary" else "stable", minute, n)
            for v, n in split.items()
        }


# -- publishing into the emulator -------------------------------------------------------------------
def metric_datums(
    function: str, alias: str, version: str, start: datetime, s: MinuteSample
) -> tuple[list[dict], list[dict]]:
    """(AWS/Lambda datums, Stageflow/Simulator datums) for one version-minute."""
    dims = lambda_dimensions(function, alias, version)
    if s.invocations <= 0:
        return [], []  # Lambda publishes nothing for a version without traffic
    lam = [
        {"MetricName": INVOCATIONS, "Dimensions": dims, "Timestamp": start, "Value": float(s.invocations),
         "Unit": "Count"},
        {"MetricName": ERRORS, "Dimensions": dims, "Timestamp": start, "Value": float(s.errors),
         "Unit": "Count"},
        {
            "MetricName": DURATION,
            "Dimensions": dims,
            "Timestamp": start,
            "StatisticValues": {
                "SampleCount": float(s.invocations),
                "Sum": s.duration_sum,
                "Minimum": s.duration_min,
                "Maximum": s.duration_max,
            },
            "Unit": "Milliseconds",
        },
    ]  # fmt: skip
    sim = []
    if s.p50_ms is not None and s.p95_ms is not None and s.p99_ms is not None:
        sim.append(
            {
                "MetricName": PERCENTILES_METRIC,
                "Dimensions": dims,
                "Timestamp": start,
                "StatisticValues": {
                    "SampleCount": 3.0,
                    "Sum": s.p50_ms + s.p95_ms + s.p99_ms,
                    "Minimum": s.p50_ms,
                    "Maximum": s.p99_ms,
                },
                "Unit": "Milliseconds",
            }
        )
    return lam, sim


def _floor_minute(t: datetime) -> datetime:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.replace(second=0, microsecond=0)


class SimulatorFeed(TrafficFeed):
    """Writes simulated alias traffic into the emulator's CloudWatch, one whole minute at a time.

    The first minute published with the canary's weight above zero is canary minute 0. Minutes are
    published once; call :meth:`run_until` before changing the weights so each minute carries the
    weights that were in effect during it.
    """

    def __init__(
        self,
        scenario: Scenario,
        cloudwatch,
        function: str,
        alias: str,
        *,
        start: datetime | None = None,
    ):
        self.scenario = scenario
        self.generator = TrafficGenerator(scenario)
        self.cloudwatch = cloudwatch
        self.function = function
        self.alias = alias
        self._next: datetime | None = _floor_minute(start) if start else None
        self._canary_start: datetime | None = None
        self._pre_canary = 0
        self.published: list[tuple[datetime, str, str, MinuteSample]] = []  # (start, version, role, s)
        self.calls = 0

    @property
    def canary_start(self) -> datetime | None:
        """When the canary first took traffic (canary minute 0), once it has."""
        return self._canary_start

    def canary_minute(self, t: datetime) -> int | None:
        if self._canary_start is None:
            return None
        return int((_floor_minute(t) - self._canary_start).total_seconds() // 60)

    def pending_minutes(self, now: datetime) -> list[datetime]:
        if self._next is None:
            self._next = _floor_minute(now)
        out, t = [], self._next
        while t + timedelta(minutes=1) <= now:
            out.append(t)
            t += timedelta(minutes=1)
        return out

    def run_until(self, now: datetime, weights: Mapping[str, int], roles: Mapping[str, str]) -> None:
        lam: list[dict] = []
        sim: list[dict] = []
        for start in self.pending_minutes(now):
            if self._canary_start is None and any(
                roles.get(v) == "canary" and w > 0 for v, w in weights.items()
            ):
                self._canary_start = start
            minute = self.canary_minute(start)
            if minute is None:  # before the canary takes traffic: minutes -1, -2, ... (distinct streams)
                self._pre_canary += 1
                minute = -self._pre_canary
            for version, s in self.generator.minute(minute, weights, roles).items():
                a, b = metric_datums(self.function, self.alias, version, start, s)
                lam += a
                sim += b
                self.published.append((start, version, roles.get(version, "stable"), s))
            self._next = start + timedelta(minutes=1)
        self._put(LAMBDA_NAMESPACE, lam)
        self._put(SIMULATOR_NAMESPACE, sim)

    def _put(self, namespace: str, datums: Sequence[dict]) -> None:
        for i in range(0, len(datums), MAX_DATUMS_PER_CALL):
            self.cloudwatch.put_metric_data(
                Namespace=namespace, MetricData=list(datums[i : i + MAX_DATUMS_PER_CALL])
            )
            self.calls += 1
