"""GateReader: the window for the absolute gates, every minute since the canary started for the
relative checks (from the second step on)."""

from datetime import UTC, datetime, timedelta

from stageflow.config import Gates
from stageflow.deploy.gates import GateReader
from stageflow.metrics.interface import MetricSource, MinuteStats, Verdict, VersionSeries

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class MinuteSource(MetricSource):
    name = "fake"

    def __init__(self):
        self.asked = []

    def series(self, function, alias, version, start, end):
        self.asked.append((version, start, end))
        n = int((end - start).total_seconds() // 60)
        rows = tuple(MinuteStats(start + timedelta(minutes=i), 100, 0, 50, 100, 150) for i in range(n))
        return VersionSeries(version, rows, "fake")


def _reader(calls):
    def judge(canary, stable, gates, firing, *, window_complete, **kw):
        calls.append((canary, stable, kw))
        return Verdict("continue", (), "fake")

    return GateReader(MinuteSource(), None, (), Gates(), "fn", "live", judge)


def test_later_step_gets_both_versions_since_the_canary_started():
    calls = []
    reader = _reader(calls)
    start, now = T0 + timedelta(minutes=15), T0 + timedelta(minutes=20)
    reader.check("2", "1", start, now, window_complete=False, canary_start=T0)
    canary, stable, kw = calls[-1]
    assert len(canary.minutes) == len(stable.minutes) == 5  # the window for the absolute gates
    rel_c, rel_s = kw["relative"]
    assert (rel_c.version, rel_s.version) == ("2", "1")
    assert len(rel_c.minutes) == len(rel_s.minutes) == 20 and rel_c.minutes[0].start == T0


def test_first_step_no_stable_or_old_record_judge_the_window_only():
    calls = []
    reader = _reader(calls)
    start, now = T0, T0 + timedelta(minutes=5)
    reader.check("2", "1", start, now, window_complete=False, canary_start=T0)  # first step
    reader.check("2", None, start + timedelta(minutes=30), now + timedelta(minutes=30), window_complete=False,
                 canary_start=T0)  # fmt: skip
    reader.check("2", "1", start, now, window_complete=False)  # a record from before canary_start
    assert [kw for _, _, kw in calls][::2] == [{}, {}]
    # at 100 % no stable and no relative checks, but the change-point checks see every minute since
    # the canary started
    assert set(calls[1][2]) == {"history"}
    h_c, h_s = calls[1][2]["history"]
    assert h_s is None and h_c.minutes[0].start == T0 and len(h_c.minutes) == 35
