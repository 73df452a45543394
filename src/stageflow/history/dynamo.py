"""``DynamoHistory``: the :class:`~stageflow.ports.DeploymentHistory` in one DynamoDB table.

A record is updated with a conditional write on its ``seq`` counter, so two writers never lose each
other's transitions; every verdict is its own item, written with the record's update in one
transaction. AWS errors are mapped by :func:`stageflow.aws.aws_error` (exit 3); a failed condition is
raised as botocore's ``ClientError`` for the caller that set it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stageflow.aws import aws_error
from stageflow.deploy.records import ACTIVE, Deployment, Transition, VerdictRecord
from stageflow.errors import EnvironmentFailure
from stageflow.history import items as it
from stageflow.history.locks import DynamoLock
from stageflow.isotime import id_stamp, iso

KEEP_VERDICTS = 1  # the record keeps the last verdict; recent_verdicts()/all_verdicts() read the items
_CONDITIONS = ("ConditionalCheckFailedException", "TransactionCanceledException")


class ConcurrentUpdate(EnvironmentFailure):
    """The record changed under us (e.g. on-call rolled back while this run was baking)."""


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def update_request(
    pk: str,
    dep: Deployment,
    changes: Mapping[str, Any],
    transition: Transition | None,
    verdict: VerdictRecord | None,
    token: str,
) -> dict[str, Any]:
    """The conditional UpdateItem of one write: ``changes`` set, the transition appended, the newest
    verdicts kept, ``seq`` advanced from ``dep.seq`` (the condition) and the write's ``token``."""
    names, values, sets = {}, {}, []
    for i, (k, v) in enumerate(changes.items()):
        names[f"#f{i}"] = k
        values[f":v{i}"] = it.attr(v.to_json() if hasattr(v, "to_json") else v)
        sets.append(f"#f{i} = :v{i}")
    if "status" in changes:
        names["#ps"] = "pk_status"
        values[":ps"] = {"S": f"{pk}#{changes['status']}"}
        sets.append("#ps = :ps")
    if transition is not None:
        names["#tr"] = "transitions"
        values[":tr"] = it.attr([transition.to_json()])
        values[":empty"] = {"L": []}
        sets.append("#tr = list_append(if_not_exists(#tr, :empty), :tr)")
    if verdict is not None:
        # Every verdict is its own item (a 60-minute canary has dozens, and an item is capped at
        # 400 KB); the record keeps the last few for status and notifications.
        recent = (*dep.verdicts, verdict)[-KEEP_VERDICTS:]
        names.update({"#vd": "verdicts", "#vc": "verdict_count"})
        values[":vd"] = it.attr([v.to_json() for v in recent])
        values[":vc"] = {"N": str(dep.verdict_count + 1)}
        sets += ["#vd = :vd", "#vc = :vc"]
    names.update({"#wid": "write_id", "#seq": "seq"})
    values.update({":wid": {"S": token}, ":old": {"N": str(dep.seq)}, ":new": {"N": str(dep.seq + 1)}})
    sets += ["#wid = :wid", "#seq = :new"]
    return {
        "Key": it.dep_key(pk, dep.deployment_id),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "#seq = :old",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _without_keys(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}


class DynamoHistory:
    """Deployment records and the per-environment lock in one DynamoDB table."""

    def __init__(self, client, table: str, service: str, environment: str):
        self.ddb = client
        self.table = table
        self.service = service
        self.environment = environment
        self.pk = f"{service}#{environment}"
        self._lock = DynamoLock(client, self.pk, environment, self._call, self.record_event)

    def _call(self, fn, **kwargs):
        try:
            return fn(TableName=self.table, **kwargs)
        except Exception as exc:
            if _code(exc) in _CONDITIONS:
                raise
            mapped = aws_error(exc, "deployment history")
            if mapped is None:
                raise
            raise mapped from None

    def _query(self, **kwargs) -> list[dict]:
        return self._call(self.ddb.query, **kwargs).get("Items", [])

    def _query_all(self, sk_from: str, sk_to: str) -> list[dict]:
        """Every item of the environment with ``sk_from <= sk <= sk_to``, all pages."""
        items, start = [], None
        while True:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
                "ExpressionAttributeValues": {
                    ":pk": {"S": self.pk},
                    ":a": {"S": sk_from},
                    ":b": {"S": sk_to},
                },
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            resp = self._call(self.ddb.query, **kwargs)
            items += resp.get("Items", [])
            start = resp.get("LastEvaluatedKey")
            if not start:
                return items

    def _prefix(self, prefix: str, **kwargs) -> list[dict]:
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={":pk": {"S": self.pk}, ":p": {"S": prefix}},
            **kwargs,
        )

    # -- the lock ---------------------------------------------------------------------------------
    def acquire_lock(self, deployment_id: str, who: str, now: datetime) -> None:
        self._lock.acquire(deployment_id, who, now)

    def lock(self) -> dict | None:
        return self._lock.read()

    def release_lock(self, deployment_id: str) -> bool:
        return self._lock.release(deployment_id)

    def break_lock(
        self, reason: str, who: str, now: datetime, *, forced: str | None = None, expect: str | None = None
    ) -> dict | None:
        return self._lock.break_(reason, who, now, forced=forced, expect=expect)

    # -- the freeze a person set (stageflow freeze / unfreeze) -------------------------------------
    def freeze_item(self) -> dict | None:
        """The environment's ``FREEZE`` item (``until``, ``reason``, ``by``, ``at``), if one is set."""
        resp = self._call(self.ddb.get_item, Key=it.freeze_key(self.pk), ConsistentRead=True)
        return it.from_attrs(resp["Item"]) if resp.get("Item") else None

    def set_freeze(self, until: datetime, reason: str, who: str, now: datetime) -> None:
        """Freeze deploys until ``until`` (replacing an earlier freeze), and record it as an event."""
        body = {"until": iso(until), "reason": reason, "by": who, "at": iso(now)}
        self._call(self.ddb.put_item, Item=it.to_attrs({**it.plain_key(self.pk, it.FREEZE_SK), **body}))
        self.record_event("freeze", now, body)

    def clear_freeze(self, reason: str, who: str, now: datetime) -> dict | None:
        """Lift the freeze a person set; the lifted item (``None``: there was none), recorded."""
        held = self.freeze_item()
        if held is None:
            return None
        self._call(self.ddb.delete_item, Key=it.freeze_key(self.pk))
        self.record_event("unfreeze", now, {"reason": reason, "by": who, "lifted": held.get("reason")})
        return held

    # -- incidents (every rollback that moved traffic) ---------------------------------------------
    def record_incident(self, incident: Mapping[str, Any]) -> None:
        """Write an incident (``Incident.to_json()``); the same key again replaces it (one per rollback)."""
        body = {**it.plain_key(self.pk, f"{it.INCIDENT_PREFIX}{incident['key']}"), **incident}
        self._call(self.ddb.put_item, Item=it.to_attrs(body))

    def incident(self, key: str) -> dict | None:
        sk = {"pk": {"S": self.pk}, "sk": {"S": f"{it.INCIDENT_PREFIX}{key}"}}
        resp = self._call(self.ddb.get_item, Key=sk, ConsistentRead=True)
        return _without_keys(it.from_attrs(resp["Item"])) if resp.get("Item") else None

    def incidents(self, limit: int = 20) -> list[dict]:
        """The newest incidents first."""
        items = self._prefix(it.INCIDENT_PREFIX, ScanIndexForward=False, Limit=limit)
        return [_without_keys(it.from_attrs(i)) for i in items]

    def incidents_since(self, since: datetime) -> list[dict]:
        """Incidents opened at or after ``since``, oldest first, every page (DORA's time to restore)."""
        items = self._query_all(f"{it.INCIDENT_PREFIX}{id_stamp(since)}", f"{it.INCIDENT_PREFIX}~")
        return [_without_keys(it.from_attrs(i)) for i in items]

    # -- deployments ------------------------------------------------------------------------------
    def create(self, dep: Deployment) -> None:
        try:
            self._call(
                self.ddb.put_item,
                Item=it.deployment_item(self.pk, dep),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except Exception as exc:
            if _code(exc) not in _CONDITIONS or self.get(dep.deployment_id) is None:
                raise
            # Deployment ids are unique per run: the record is ours, written by an attempt whose
            # answer was lost (a timeout or a dropped connection before botocore retried).

    def get(self, deployment_id: str) -> Deployment | None:
        resp = self._call(self.ddb.get_item, Key=it.dep_key(self.pk, deployment_id), ConsistentRead=True)
        item = resp.get("Item")
        return it.deployment_from_item(item) if item else None

    def update(
        self,
        dep: Deployment,
        *,
        transition: Transition | None = None,
        verdict: VerdictRecord | None = None,
        **changes: Any,
    ) -> Deployment:
        """The record after ``changes`` (plus ``transition`` appended, ``verdict`` counted), written
        under the seq check; :class:`ConcurrentUpdate` when another writer got there first."""
        # A token per write: when an answer is lost and botocore retries, the retry fails the seq
        # check against our own write; the token tells that apart from another writer's.
        token = secrets.token_hex(8)
        update = update_request(self.pk, dep, changes, transition, verdict, token)
        try:
            if verdict is None:
                self._call(self.ddb.update_item, **update)
            else:
                put = {"TableName": self.table, "Item": it.verdict_item(self.pk, dep, verdict)}
                self._transact([{"Update": {"TableName": self.table, **update}}, {"Put": put}])
        except Exception as exc:
            if _code(exc) not in _CONDITIONS:
                raise
            if not self._landed(dep, token):
                raise ConcurrentUpdate(
                    f"deployment {dep.deployment_id} was changed by another run", "check: stageflow status"
                ) from None
        if changes.get("status", dep.status) in ACTIVE:
            self._lock.heartbeat(dep.deployment_id)  # the holder is alive (only while it holds the lock)
        return dep.with_changes(
            transition=transition, verdict=verdict, keep_verdicts=KEEP_VERDICTS, **changes
        )

    def _landed(self, dep: Deployment, token: str) -> bool:
        """Whether the record holds our write ``token`` at the next seq (an earlier attempt landed)."""
        resp = self._call(
            self.ddb.get_item,
            Key=it.dep_key(self.pk, dep.deployment_id),
            ConsistentRead=True,
            ProjectionExpression="#w, #s",
            ExpressionAttributeNames={"#w": "write_id", "#s": "seq"},
        )
        item = resp.get("Item") or {}
        return item.get("write_id", {}).get("S") == token and item.get("seq", {}).get("N") == str(dep.seq + 1)

    def _transact(self, items: list[dict]) -> None:
        try:
            self.ddb.transact_write_items(TransactItems=items)
        except Exception as exc:
            if _code(exc) in _CONDITIONS:
                raise
            mapped = aws_error(exc, "deployment history")
            if mapped is None:
                raise
            raise mapped from None

    def recent_verdicts(self, deployment_id: str, n: int = 3) -> list[VerdictRecord]:
        """The last ``n`` verdicts of a deployment, oldest first (one query, newest items first)."""
        found = self._prefix(f"VRD#{deployment_id}#", ScanIndexForward=False, Limit=n)
        return [it.verdict_from_item(i) for i in found][::-1]

    def all_verdicts(self, deployment_id: str, limit: int = 500) -> list[VerdictRecord]:
        """Every verdict of a deployment, oldest first."""
        return [it.verdict_from_item(i) for i in self._prefix(f"VRD#{deployment_id}#", Limit=limit)]

    def list(self, limit: int = 20) -> list[Deployment]:
        found = self._prefix("DEP#", ScanIndexForward=False, Limit=limit)
        return [it.deployment_from_item(i) for i in found]

    def by_status(self, status: str, limit: int = 10) -> list[Deployment]:
        found = self._query(
            IndexName="by_status",
            KeyConditionExpression="pk_status = :ps",
            ExpressionAttributeValues={":ps": {"S": f"{self.pk}#{status}"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [it.deployment_from_item(i) for i in found]

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
        """The newest succeeded deployment whose version is not ``exclude_version`` and was not rolled back
        from later (``extra.marked_bad``)."""
        for dep in self.by_status("succeeded", limit=25):
            if dep.version != exclude_version and not dep.extra.get("marked_bad"):
                return dep
        return None

    def since(self, since: datetime) -> tuple[list[Deployment], list[dict]]:
        """The deployments started at or after ``since`` (by id) and the events recorded since then,
        oldest first, every page: what the DORA metrics read."""
        deps = [it.deployment_from_item(i) for i in self._query_all(f"DEP#{id_stamp(since)}", "DEP#~")]
        events = [it.from_attrs(i) for i in self._query_all(f"EVT#{iso(since)}", "EVT#~")]
        return deps, events

    # -- events outside a deploy ------------------------------------------------------------------
    def record_event(self, kind: str, now: datetime, data: Mapping[str, Any]) -> None:
        body = {"pk": self.pk, "sk": f"EVT#{iso(now)}#{secrets.token_hex(3)}", "kind": kind, "at": iso(now)}
        self._call(self.ddb.put_item, Item=it.to_attrs({**body, **data}))

    def events(self, limit: int = 50) -> list[dict]:
        return [it.from_attrs(i) for i in self._prefix("EVT#", ScanIndexForward=False, Limit=limit)]
