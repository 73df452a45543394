"""The deployment history in DynamoDB: one record per deployment, every transition, the deploy lock.

Key schema (the same as infrastructure/modules/service/history.tf):

- ``pk`` (S) = ``<service>#<environment>``; ``sk`` (S) = ``DEP#<deployment id>`` for a deployment,
  ``LOCK`` for the environment's deploy lock, ``EVT#<time>#<id>`` for rollback events outside a deploy.
- GSI ``by_status``: ``pk_status`` (S) = ``<service>#<environment>#<status>``, ``started_at`` (S).

Deployment ids sort by time (``20261122T015900Z-1a2b3c``). A record is updated with a conditional
write on its ``seq`` counter, so two writers never lose each other's transitions.
"""

from __future__ import annotations

import os
import secrets as _secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stageflow.deploy.records import new_deployment_id
from stageflow.errors import EnvironmentFailure, LockedError, UsageError
from stageflow.isotime import format_age, iso, parse_iso

__all__ = ["format_age", "iso", "new_deployment_id", "parse_iso"]  # moved; re-exported for now

LOCK_SK = "LOCK"
STATUSES = ("in_progress", "awaiting_approval", "succeeded", "rolled_back", "failed")
ACTIVE = ("in_progress", "awaiting_approval")
KEEP_VERDICTS = 1  # the record keeps the last verdict; recent_verdicts()/all_verdicts() read the items


def default_who() -> str:
    user = os.environ.get("CODEBUILD_INITIATOR") or os.environ.get("USER") or "unknown"
    return f"{user}@{socket.gethostname()}"


def lock_age_seconds(lock: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """How long the lock has been held, in wall-clock seconds (``acquired``, the real time the lock
    was taken; older locks only have ``since``, the run's clock, which is virtual in local mode)."""
    stamp = lock.get("acquired") or lock.get("since")
    if not stamp:
        return None
    try:
        taken = parse_iso(str(stamp))
    except ValueError:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - taken).total_seconds())


def lock_holder_text(lock: Mapping[str, Any] | None, now: datetime | None = None) -> str:
    """``deployment X (who, pid N on HOST, held for 3 min)``: who holds a lock, for people."""
    if not lock:
        return "another run"
    where = f"pid {lock['pid']} on {lock['host']}" if lock.get("host") and lock.get("pid") else None
    parts = [str(lock.get("who") or "unknown"), *([where] if where else [])]
    parts.append(f"held for {format_age(lock_age_seconds(lock, now))}")
    return f"deployment {lock.get('holder')} ({', '.join(parts)})"


def lock_hint(environment: str) -> str:
    return (
        f"wait; stageflow status {environment} says whether it is stale; "
        f"if so: stageflow unlock {environment} --reason TEXT"
    )


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
    if isinstance(v, dict):
        return {str(k): _dynamo(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_dynamo(x) for x in v]
    return str(v)


class ConcurrentUpdate(EnvironmentFailure):
    """The record changed under us (e.g. on-call rolled back while this run was baking)."""


@dataclass
class Deployment:
    deployment_id: str
    environment: str
    service: str
    version: str
    previous_version: str | None
    status: str
    phase: str
    started_at: str
    who: str
    commit: str | None = None
    artifact_digest: str | None = None
    plan_hash: str | None = None
    ended_at: str | None = None
    state: dict = field(default_factory=dict)
    transitions: list = field(default_factory=list)
    verdicts: list = field(default_factory=list)  # the last KEEP_VERDICTS; all_verdicts() has every one
    verdict_count: int = 0
    extra: dict = field(default_factory=dict)
    seq: int = 0

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Deployment:
        d = _plain(dict(item))
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in d.items() if k in names}
        for name in ("previous_version", "version"):  # None values are not stored
            values.setdefault(name, None)
        return cls(**values)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class DynamoHistory:
    """Deployment records and the per-environment lock in one DynamoDB table."""

    def __init__(self, client, table: str, service: str, environment: str):
        self.ddb = client
        self.table = table
        self.service = service
        self.environment = environment
        self.pk = f"{service}#{environment}"

    # -- errors ---------------------------------------------------------------------------------
    def _call(self, fn, **kwargs):
        from botocore.exceptions import ClientError, EndpointConnectionError

        try:
            return fn(TableName=self.table, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise
            if code == "ResourceNotFoundException":
                raise EnvironmentFailure(
                    f"deployment history table {self.table!r} not found",
                    "provision the environment first (stageflow deploy / apply)",
                ) from None
            raise EnvironmentFailure(
                f"deployment history: {code}: {exc.response['Error'].get('Message', '')}"
            ) from None
        except EndpointConnectionError as exc:
            raise EnvironmentFailure(f"deployment history unreachable: {exc}") from None

    # -- the lock ---------------------------------------------------------------------------------
    def acquire_lock(self, deployment_id: str, who: str, now: datetime) -> None:
        from botocore.exceptions import ClientError

        item = {
            "pk": {"S": self.pk},
            "sk": {"S": LOCK_SK},
            "holder": {"S": deployment_id},
            "who": {"S": who},
            "since": {"S": iso(now)},  # the run's clock (virtual in a local rehearsal)
            "acquired": {"S": iso(datetime.now(UTC))},  # wall clock: the lock's age
            "host": {"S": socket.gethostname()},
            "pid": {"N": str(os.getpid())},
        }
        try:
            # the same deployment may take its lock again (a resumed run records its own process)
            self._call(
                self.ddb.put_item,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR holder = :h",
                ExpressionAttributeValues={":h": {"S": deployment_id}},
            )
        except ClientError:
            lock = self.lock()
            if lock is not None and lock.get("holder") == deployment_id:
                return  # our own put landed and its answer was lost; the retry found it
            raise LockedError(
                f"environment {self.environment}",
                lock_holder_text(lock),
                lock_hint(self.environment),
            ) from None

    def lock(self) -> dict | None:
        resp = self._call(
            self.ddb.get_item, Key={"pk": {"S": self.pk}, "sk": {"S": LOCK_SK}}, ConsistentRead=True
        )
        item = resp.get("Item")
        if not item:
            return None
        return {k: next(iter(v.values())) for k, v in item.items()}

    def release_lock(self, deployment_id: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call(
                self.ddb.delete_item,
                Key={"pk": {"S": self.pk}, "sk": {"S": LOCK_SK}},
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={":h": {"S": deployment_id}},
            )
            return True
        except ClientError:
            return False

    def break_lock(self, reason: str, who: str, now: datetime) -> dict | None:
        if not reason.strip():
            raise UsageError("breaking a lock needs a reason", "--reason 'the run was killed at 14:02'")
        held = self.lock()
        if held is None:
            return None
        self._call(self.ddb.delete_item, Key={"pk": {"S": self.pk}, "sk": {"S": LOCK_SK}})
        age = lock_age_seconds(held)
        self.record_event(
            "lock_broken",
            now,
            {
                "holder": held.get("holder"),
                "reason": reason,
                "who": who,
                "held_by": held.get("who"),
                "held_seconds": round(age) if age is not None else None,
            },
        )
        return held

    # -- deployments ------------------------------------------------------------------------------
    def _key(self, deployment_id: str) -> dict:
        return {"pk": {"S": self.pk}, "sk": {"S": f"DEP#{deployment_id}"}}

    def create(self, dep: Deployment) -> None:
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()
        body = {k: v for k, v in dep.to_json().items() if v is not None}
        body.update(pk=self.pk, sk=f"DEP#{dep.deployment_id}", pk_status=f"{self.pk}#{dep.status}")
        item = {k: ser.serialize(_dynamo(v)) for k, v in body.items()}
        from botocore.exceptions import ClientError

        try:
            self._call(self.ddb.put_item, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError:
            if self.get(dep.deployment_id) is None:
                raise
            # Deployment ids are unique per run: the record is ours, written by an attempt whose
            # answer was lost (a timeout or a dropped connection before botocore retried).

    def get(self, deployment_id: str) -> Deployment | None:
        from boto3.dynamodb.types import TypeDeserializer

        resp = self._call(self.ddb.get_item, Key=self._key(deployment_id), ConsistentRead=True)
        item = resp.get("Item")
        if not item:
            return None
        de = TypeDeserializer()
        return Deployment.from_item({k: de.deserialize(v) for k, v in item.items()})

    def update(self, dep: Deployment, **changes: Any) -> Deployment:
        """Apply ``changes`` (plus optional ``transition=`` / ``verdict=`` appended) under the seq check."""
        from boto3.dynamodb.types import TypeSerializer
        from botocore.exceptions import ClientError

        ser = TypeSerializer()
        transition = changes.pop("transition", None)
        verdict = changes.pop("verdict", None)
        names, values, sets = {}, {}, []
        for i, (k, v) in enumerate(changes.items()):
            names[f"#f{i}"] = k
            values[f":v{i}"] = ser.serialize(_dynamo(v))
            sets.append(f"#f{i} = :v{i}")
        if "status" in changes:
            names["#ps"] = "pk_status"
            values[":ps"] = {"S": f"{self.pk}#{changes['status']}"}
            sets.append("#ps = :ps")
        if transition is not None:
            names["#tr"] = "transitions"
            values[":tr"] = ser.serialize(_dynamo([transition]))
            values[":empty"] = {"L": []}
            sets.append("#tr = list_append(if_not_exists(#tr, :empty), :tr)")
        recent = None
        if verdict is not None:
            # Every verdict is its own item (a 60-minute canary has dozens, and an item is capped at
            # 400 KB); the record keeps the last few for status and notifications.
            recent = (dep.verdicts + [verdict])[-KEEP_VERDICTS:]
            names["#vd"] = "verdicts"
            values[":vd"] = ser.serialize(_dynamo(recent))
            sets.append("#vd = :vd")
            names["#vc"] = "verdict_count"
            values[":vc"] = {"N": str(dep.verdict_count + 1)}
            sets.append("#vc = :vc")
        # A token per write: when an answer is lost and botocore retries, the retry fails the seq
        # check against our own write; the token tells that apart from another writer's.
        token = _secrets.token_hex(8)
        names["#wid"] = "write_id"
        values[":wid"] = {"S": token}
        sets.append("#wid = :wid")
        names["#seq"] = "seq"
        values[":old"] = {"N": str(dep.seq)}
        values[":new"] = {"N": str(dep.seq + 1)}
        sets.append("#seq = :new")
        update = {
            "TableName": self.table,
            "Key": self._key(dep.deployment_id),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "#seq = :old",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        try:
            if verdict is None:
                self._call(self.ddb.update_item, **{k: v for k, v in update.items() if k != "TableName"})
            else:
                item = {
                    "pk": self.pk,
                    "sk": f"VRD#{dep.deployment_id}#{dep.verdict_count + 1:06d}",
                    "deployment_id": dep.deployment_id,
                    **verdict,
                }
                put = {
                    "TableName": self.table,
                    "Item": {k: ser.serialize(_dynamo(v)) for k, v in item.items()},
                }
                self._transact([{"Update": update}, {"Put": put}])
        except ClientError:
            if not self._landed(dep, token):
                raise ConcurrentUpdate(
                    f"deployment {dep.deployment_id} was changed by another run", "check: stageflow status"
                ) from None
        for k, v in changes.items():
            setattr(dep, k, v)
        if transition is not None:
            dep.transitions.append(transition)
        if recent is not None:
            dep.verdicts = recent
            dep.verdict_count += 1
        dep.seq += 1
        return dep

    def _landed(self, dep: Deployment, token: str) -> bool:
        """Whether the record holds our write ``token`` at the next seq (an earlier attempt landed)."""
        resp = self._call(
            self.ddb.get_item,
            Key=self._key(dep.deployment_id),
            ConsistentRead=True,
            ProjectionExpression="#w, #s",
            ExpressionAttributeNames={"#w": "write_id", "#s": "seq"},
        )
        item = resp.get("Item") or {}
        return item.get("write_id", {}).get("S") == token and item.get("seq", {}).get("N") == str(dep.seq + 1)

    def _transact(self, items: list[dict]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.ddb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                raise
            raise EnvironmentFailure(
                f"deployment history: {code}: {exc.response['Error'].get('Message', '')}"
            ) from None

    def recent_verdicts(self, deployment_id: str, n: int = 3) -> list[dict]:
        """The last ``n`` verdicts of a deployment, oldest first (one query, newest items first)."""
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        resp = self._call(
            self.ddb.query,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
            ExpressionAttributeValues={":pk": {"S": self.pk}, ":v": {"S": f"VRD#{deployment_id}#"}},
            ScanIndexForward=False,
            Limit=n,
        )
        items = [_plain({k: de.deserialize(v) for k, v in it.items()}) for it in resp.get("Items", [])]
        return items[::-1]

    def all_verdicts(self, deployment_id: str, limit: int = 500) -> list[dict]:
        """Every verdict of a deployment, oldest first."""
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        resp = self._call(
            self.ddb.query,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
            ExpressionAttributeValues={":pk": {"S": self.pk}, ":v": {"S": f"VRD#{deployment_id}#"}},
            Limit=limit,
        )
        return [_plain({k: de.deserialize(v) for k, v in it.items()}) for it in resp.get("Items", [])]

    def list(self, limit: int = 20) -> list[Deployment]:
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        resp = self._call(
            self.ddb.query,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :dep)",
            ExpressionAttributeValues={":pk": {"S": self.pk}, ":dep": {"S": "DEP#"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [
            Deployment.from_item({k: de.deserialize(v) for k, v in it.items()})
            for it in resp.get("Items", [])
        ]

    def by_status(self, status: str, limit: int = 10) -> list[Deployment]:
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        resp = self._call(
            self.ddb.query,
            IndexName="by_status",
            KeyConditionExpression="pk_status = :ps",
            ExpressionAttributeValues={":ps": {"S": f"{self.pk}#{status}"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [
            Deployment.from_item({k: de.deserialize(v) for k, v in it.items()})
            for it in resp.get("Items", [])
        ]

    def in_flight(self) -> Deployment | None:
        """The deployment that is not finished, if any. A lock left behind by a finished run (killed
        between its last record and releasing the lock) is released here."""
        lock = self.lock()
        if lock:
            dep = self.get(lock["holder"])
            if dep is not None and dep.status in ACTIVE:
                return dep
            if dep is not None:
                self.release_lock(dep.deployment_id)
        for status in ACTIVE:
            found = self.by_status(status, limit=1)
            if found:
                return found[0]
        return None

    def last_known_good(self, exclude_version: str | None = None) -> Deployment | None:
        """The newest succeeded deployment whose version is not ``exclude_version``."""
        for dep in self.by_status("succeeded", limit=25):
            if dep.version != exclude_version:
                return dep
        return None

    def record_event(self, kind: str, now: datetime, data: Mapping[str, Any]) -> None:
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()
        body = {
            "pk": self.pk,
            "sk": f"EVT#{iso(now)}#{_secrets.token_hex(3)}",
            "kind": kind,
            "at": iso(now),
            **data,
        }
        self._call(self.ddb.put_item, Item={k: ser.serialize(_dynamo(v)) for k, v in body.items()})

    def events(self, limit: int = 50) -> list[dict]:
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        resp = self._call(
            self.ddb.query,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :e)",
            ExpressionAttributeValues={":pk": {"S": self.pk}, ":e": {"S": "EVT#"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_plain({k: de.deserialize(v) for k, v in it.items()}) for it in resp.get("Items", [])]
