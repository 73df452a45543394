"""The deployment history: records in DynamoDB (:mod:`.dynamo`), their items (:mod:`.items`), the
per-environment deploy lock (:mod:`.locks`)."""

from __future__ import annotations

from stageflow.deploy.records import ACTIVE, STATUSES, Deployment, new_deployment_id
from stageflow.history.dynamo import KEEP_VERDICTS, ConcurrentUpdate, DynamoHistory
from stageflow.history.items import LOCK_SK, _dynamo, _plain
from stageflow.history.locks import default_who, lock_age_seconds, lock_hint, lock_holder_text
from stageflow.isotime import format_age, iso, parse_iso

__all__ = [
    "ACTIVE",
    "KEEP_VERDICTS",
    "LOCK_SK",
    "STATUSES",
    "ConcurrentUpdate",
    "Deployment",
    "DynamoHistory",
    "_dynamo",
    "_plain",
    "default_who",
    "format_age",
    "iso",
    "lock_age_seconds",
    "lock_hint",
    "lock_holder_text",
    "new_deployment_id",
    "parse_iso",
]
