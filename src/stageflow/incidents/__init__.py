"""Incidents: every rollback that moved traffic — the canary's own, on-call's, an alarm's — opens one in
the environment's history (trigger, the verdict's numbers, who, when the bad version first took traffic,
time to restore, the post-mortem's due date). Plain data (:mod:`.model`, standard library only: the
rollback function's zip carries it) and a Markdown post-mortem draft (:mod:`.postmortem`)."""

from __future__ import annotations

from stageflow.incidents.model import (
    POSTMORTEM_DAYS,
    Incident,
    from_deployment,
    from_rollback,
    open_incident,
)

__all__ = ["POSTMORTEM_DAYS", "Incident", "from_deployment", "from_rollback", "open_incident"]
