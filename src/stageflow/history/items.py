"""Records ⇄ DynamoDB items: the only place that knows how a record is stored.

Key schema (the same as infrastructure/modules/service/history.tf):

- ``pk`` (S) = ``<service>#<environment>``; ``sk`` (S) = ``DEP#<deployment id>`` for a deployment,
  ``VRD#<deployment id>#<n>`` for its n-th verdict, ``LOCK`` for the environment's deploy lock,
  ``FREEZE`` for a freeze set by a person, ``EVT#<time>#<id>`` for events outside a deploy,
  ``INC#<incident key>`` for an incident (keys start with the time, so they sort by it).
- GSI ``by_status``: ``pk_status`` (S) = ``<service>#<environment>#<status>``, ``started_at`` (S).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from stageflow.deploy.records import Deployment, VerdictRecord

LOCK_SK = "LOCK"
FREEZE_SK = "FREEZE"
INCIDENT_PREFIX = "INC#"


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _dynamo(v: Any) -> Any:
    """Values DynamoDB accepts: floats as Decimal with 15 significant digits, magnitudes below
    DynamoDB's smallest number (1e-130) as 0, NaN and infinity refused."""
    if isinstance(v, bool) or v is None or isinstance(v, str | int | Decimal):
        return v
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("NaN or infinity cannot be recorded")
        if abs(v) < 1e-120:
            return Decimal(0)
        return Decimal(f"{v:.15g}")
    if isinstance(v, Mapping):
        return {str(k): _dynamo(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_dynamo(x) for x in v]
    return str(v)


def to_attrs(body: Mapping[str, Any]) -> dict[str, dict]:
    """Plain values → DynamoDB attribute values."""
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()
    return {k: ser.serialize(_dynamo(v)) for k, v in body.items()}


def attr(value: Any) -> dict:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer().serialize(_dynamo(value))


def from_attrs(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values → plain values (ints stay ints)."""
    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()
    return _plain({k: de.deserialize(v) for k, v in item.items()})


def dep_key(pk: str, deployment_id: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": f"DEP#{deployment_id}"}}


def lock_key(pk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": LOCK_SK}}


def freeze_key(pk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": FREEZE_SK}}


def plain_key(pk: str, sk: str) -> dict[str, str]:
    return {"pk": pk, "sk": sk}


def deployment_item(pk: str, dep: Deployment) -> dict[str, dict]:
    body = {k: v for k, v in dep.to_json().items() if v is not None}
    body.update(pk=pk, sk=f"DEP#{dep.deployment_id}", pk_status=f"{pk}#{dep.status}")
    return to_attrs(body)


def deployment_from_item(item: Mapping[str, Any]) -> Deployment:
    return Deployment.from_json(from_attrs(item))


def verdict_item(pk: str, dep: Deployment, verdict: VerdictRecord) -> dict[str, dict]:
    body = {
        "pk": pk,
        "sk": f"VRD#{dep.deployment_id}#{dep.verdict_count + 1:06d}",
        "deployment_id": dep.deployment_id,
        **verdict.to_json(),
    }
    return to_attrs(body)


def verdict_from_item(item: Mapping[str, Any]) -> VerdictRecord:
    return VerdictRecord.from_json(from_attrs(item))
