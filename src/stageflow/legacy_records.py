"""The one conversion from the history adapter's current return values (``history.Deployment`` with
dict transitions, verdict dicts) to the typed records of :mod:`stageflow.deploy.records`, for the
readers that take records (dora, deployment_report). Once the history adapter returns records, every
call here is the identity: delete this module and its three call sites."""

from __future__ import annotations

from typing import Any

from stageflow.deploy.records import Deployment, VerdictRecord


def as_deployment(dep: Any) -> Deployment:
    return dep if isinstance(dep, Deployment) else Deployment.from_json(dep.to_json())


def as_verdict(v: Any) -> VerdictRecord:
    return v if isinstance(v, VerdictRecord) else VerdictRecord.from_json(v)
