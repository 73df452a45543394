"""Real traffic on the canary's virtual clock: the chaos stage's traffic feed (local mode).

:class:`InvokeFeed` is a :class:`~stageflow.metrics.interface.TrafficFeed` like the rehearsal's
simulator, but it makes no numbers up: for each whole virtual minute it invokes the alias
``invocations_per_minute`` times through the Lambda API. The emulator's local runtime picks the
version by the alias's weights, runs the deployed zip (with the experiment's fault on the versions it
targets) and records the per-version ``AWS/Lambda`` metrics, stamped at that virtual minute (the
Invoke's client context names it, see :mod:`stageflow.local.faults`). The emulator computes no
percentiles, so the feed takes each invocation's ``Duration`` from the ``REPORT`` line of its log tail
(as Lambda writes it) and publishes that minute's p50/p95/p99 per version where the local metric
source reads them (``Stageflow/Simulator``). The canary's gates then judge real invocations.

The fault goes on when the canary first takes traffic and comes off after the experiment's
``duration_minutes`` (virtual) or when the run ends (:meth:`close`).
"""

from __future__ import annotations

import base64
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol

from stageflow.chaos.model import Experiment
from stageflow.local.faults import client_context
from stageflow.metrics.interface import TrafficFeed
from stageflow.metrics.lambda_metrics import PERCENTILES_METRIC, SIMULATOR_NAMESPACE, lambda_dimensions

REPORT_DURATION = re.compile(r"REPORT RequestId: \S*\s+Duration: ([0-9.]+) ms")
PARALLEL = 4


class FaultInjector(Protocol):
    """Sets an experiment's fault on function versions and takes it off (local: the emulator's hooks;
    AWS: FIS, see :mod:`stageflow.chaos.fis`)."""

    def start(self, function: str, versions: Sequence[str], experiment: Experiment) -> None: ...

    def stop(self) -> None: ...


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (what CloudWatch's pNN means for a set of datapoints)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def report_duration(log_tail: str) -> float | None:
    found = REPORT_DURATION.findall(log_tail or "")
    return float(found[-1]) if found else None


def _floor_minute(t: datetime) -> datetime:
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.replace(second=0, microsecond=0)


class InvokeFeed(TrafficFeed):
    def __init__(
        self,
        lambda_client,
        cloudwatch,
        function: str,
        alias: str,
        event: bytes,
        experiment: Experiment,
        injector: FaultInjector,
        *,
        start: datetime | None = None,
    ):
        self.lam, self.cloudwatch = lambda_client, cloudwatch
        self.function, self.alias, self.event = function, alias, event
        self.experiment, self.injector = experiment, injector
        self._next = _floor_minute(start) if start else None
        self.canary_start: datetime | None = None
        self.fault_on = False
        self.fault_versions: tuple[str, ...] = ()
        self.invoked: list[tuple[datetime, str, bool, float | None]] = []  # (minute, version, error, ms)

    def run_until(self, now: datetime, weights: Mapping[str, int], roles: Mapping[str, str]) -> None:
        if self._next is None:
            self._next = _floor_minute(now)
        while self._next + timedelta(minutes=1) <= now:
            minute = self._next
            self._fault_for(minute, weights, roles)
            self._minute(minute)
            self._next = minute + timedelta(minutes=1)

    def _fault_for(self, minute: datetime, weights: Mapping[str, int], roles: Mapping[str, str]) -> None:
        canary = [v for v, w in weights.items() if roles.get(v) == "canary" and w > 0]
        if self.canary_start is None and canary:
            self.canary_start = minute
        if self.canary_start is None:
            return
        ends = self.canary_start + timedelta(minutes=self.experiment.duration_minutes)
        if not self.fault_on and minute < ends:
            exp = self.experiment
            versions = canary if exp.target == "canary" else [v for v, w in weights.items() if w > 0]
            self.injector.start(self.function, versions, exp)
            self.fault_on, self.fault_versions = True, tuple(versions)
        elif self.fault_on and minute >= ends:
            self.close()

    def _invoke(self, minute: datetime) -> tuple[str, bool, float | None]:
        resp = self.lam.invoke(
            FunctionName=self.function,
            Qualifier=self.alias,
            Payload=self.event,
            LogType="Tail",
            ClientContext=client_context(minute),
        )
        resp["Payload"].read()
        tail = resp.get("LogResult") or ""
        if tail:
            tail = base64.b64decode(tail).decode("utf-8", "replace")
        version = resp.get("ExecutedVersion") or "$LATEST"
        return version, bool(resp.get("FunctionError")), report_duration(tail)

    def _minute(self, minute: datetime) -> None:
        n = self.experiment.invocations_per_minute
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            results = list(pool.map(lambda _i: self._invoke(minute), range(n)))
        durations: dict[str, list[float]] = defaultdict(list)
        for version, errored, ms in results:
            self.invoked.append((minute, version, errored, ms))
            if ms is not None:
                durations[version].append(ms)
        datums = []
        for version, values in durations.items():
            p50, p95, p99 = (round(percentile(values, q), 3) for q in (50, 95, 99))
            datums.append(
                {
                    "MetricName": PERCENTILES_METRIC,
                    "Dimensions": lambda_dimensions(self.function, self.alias, version),
                    "Timestamp": minute,
                    "StatisticValues": {
                        "SampleCount": 3.0,
                        "Sum": p50 + p95 + p99,
                        "Minimum": p50,
                        "Maximum": p99,
                    },
                    "Unit": "Milliseconds",
                }
            )
        if datums:
            self.cloudwatch.put_metric_data(Namespace=SIMULATOR_NAMESPACE, MetricData=datums)

    def close(self) -> None:
        if self.fault_on:
            self.injector.stop()
            self.fault_on = False

    def summary(self) -> dict:
        by_version: dict[str, dict[str, int]] = defaultdict(lambda: {"invocations": 0, "errors": 0})
        for _minute, version, errored, _ms in self.invoked:
            by_version[version]["invocations"] += 1
            by_version[version]["errors"] += int(errored)
        return {"fault_versions": list(self.fault_versions), "by_version": dict(by_version)}
