"""The records of a DORA period, read through the ``DeploymentHistory`` port."""

from __future__ import annotations

from datetime import datetime, timedelta

from stageflow.deploy.records import Deployment
from stageflow.ports import DeploymentHistory


def load(history: DeploymentHistory, *, until: datetime, days: float) -> tuple[list[Deployment], list[dict]]:
    """Deployments started in the period (plus a day before it) and the events recorded since then."""
    deps, events = history.since(until - timedelta(days=days + 1))
    return deps, events
