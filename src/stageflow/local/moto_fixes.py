"""Fixes to moto's server that keep a long-lived emulator as fast as a fresh one.

Measured (issue 13, ``bench/results/rehearse_repeat.md``): on one emulator every rehearsal got slower
than the one before, and the emulator, not stageflow, used the time:

- **DynamoDB TransactWriteItems deep-copies every table it touches** before it starts (to roll back
  on failure). The deployment history writes each verdict with a transaction (the record's update
  and the verdict item, atomically), so each look copied the whole history table, which grows by
  every verdict of every rehearsal: 72 % of the emulator's CPU by the fourth rehearsal (py-spy).
  Fix: the transaction keeps the live tables and this wrapper snapshots only the items it touches,
  restoring them when the transaction fails (same outcome as moto's rollback, same errors).
- **CloudWatch GetMetricStatistics scans every datapoint ever stored** for each call: 125 ms per
  call with the data of 100 rehearsals (36,000 datapoints), about 300 calls per rehearsal. Fix: an
  index of datapoints per (namespace, metric name), sorted by time, hands the unchanged moto code
  only the datapoints inside the asked time range; moto's own filters then run as before.
  GetMetricData gets the same narrowing (datapoints of the asked metric names, any namespace, inside
  the time range), so one batched read per look costs what the datapoints it returns cost.

- **DynamoDB Query sizes every item of the partition** (for its page limit) before it applies the
  range condition: the history's ``begins_with(sk, "DEP#")`` queries sized every verdict item at every
  call. Fix: an item's size is remembered until the item is updated.
- **DynamoDB Query starts from every item of the table, sorted** (DynamoType comparisons) at every
  query: 100-180 ms per history read with a hundred rehearsals' verdicts, so CPU per rehearsal still
  grew by a quarter over 100 rehearsals. Fix: inside a query moto gets only what its own filters
  could keep (the partition, narrowed by a ``begins_with`` prefix; unsorted items for an index).

- **Lambda UpdateAlias ignores RevisionId** (moto: "not yet implemented") and never changes an alias's
  revision. AWS refuses an UpdateAlias whose RevisionId is not the alias's current one
  (PreconditionFailedException, HTTP 412) and gives the alias a new revision on every update; stageflow's
  traffic moves rely on that (issue 24 item 6), so the emulator does the same: the check and the update
  happen under one lock, each update gets a new RevisionId. (A fidelity fix, not a speed fix: listed in
  docs/architecture.md's seam table.)

- **CloudFormation has no ``AWS::FIS::ExperimentTemplate``** in moto: :mod:`stageflow.local.moto_fis`
  adds it (the chaos module's templates are one CloudFormation stack). A fidelity fix too.

Nothing else changes: moto answers the same requests with the same results. Applied by
:mod:`stageflow.local.server` before it serves (the emulator process only); tested in
``tests/unit/local/test_moto_fixes.py`` against moto's own backends.
"""

from __future__ import annotations

import bisect
import contextvars
import copy
import threading

_SHALLOW_TABLES = contextvars.ContextVar("stageflow_transact_shallow", default=False)
_GMS_QUERY: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("stageflow_gms_query", default=None)
# GetMetricData: (metric names asked, start, end); moto matches a query with dimensions by name
# alone (any namespace), so the narrowing keeps every namespace's datapoints of those names
_GMD_QUERY: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("stageflow_gmd_query", default=None)
# Table.query: (the table, hash key, range comparison, range values, index name) of the query running
_QUERY: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("stageflow_ddb_query", default=None)
_LOCK = threading.RLock()
_APPLIED = False


def apply() -> None:
    """Install the fixes (idempotent)."""
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        _patch_transact_write_items()
        _patch_item_size()
        _patch_query()
        _patch_get_metric_statistics()
        _patch_alias_revisions()
        from stageflow.local import moto_fis

        moto_fis.register()  # CloudFormation's AWS::FIS::ExperimentTemplate (modules/chaos)
        _APPLIED = True


# -- DynamoDB ----------------------------------------------------------------------------------------
class _CopyModule:
    """Stands in for the ``copy`` module inside moto's DynamoDB models: inside our transaction
    wrapper a Table "deep copy" is the table itself (we snapshot items instead); otherwise copy."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        from moto.dynamodb.models.table import Table

        if _SHALLOW_TABLES.get() and isinstance(x, Table):
            return x
        return copy.deepcopy(x, memo)


def _patch_transact_write_items() -> None:
    import moto.dynamodb.models as models

    backend = models.DynamoDBBackend
    original = backend.transact_write_items
    models.copy = _CopyModule()

    def transact_write_items(self, transact_items):
        snaps = []
        for item in transact_items or []:
            try:
                op_type, op = next(iter(item.items()))
                table = self.get_table(op["TableName"])
                if op_type == "Put":
                    attrs = op["Item"]
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]
                hash_key, range_key = self.get_keys_value(table, key)
                old = table.get_item(hash_key, range_key)
                snaps.append((table, hash_key, range_key, copy.deepcopy(old)))
            except Exception:  # noqa: BLE001, S112 - a malformed op: moto rejects it itself below
                continue
        token = _SHALLOW_TABLES.set(True)
        try:
            return original(self, transact_items)
        except BaseException:
            for table, hash_key, range_key, old in reversed(snaps):
                _restore(table, hash_key, range_key, old)
            raise
        finally:
            _SHALLOW_TABLES.reset(token)

    transact_write_items.__wrapped__ = original
    backend.transact_write_items = transact_write_items


def _restore(table, hash_key, range_key, old) -> None:
    if range_key is not None:
        bucket = table.items[hash_key]
        if old is None:
            bucket.pop(range_key, None)
            if not bucket:
                table.items.pop(hash_key, None)
        else:
            bucket[range_key] = old
    elif old is None:
        table.items.pop(hash_key, None)
    else:
        table.items[hash_key] = old


def _patch_item_size() -> None:
    """Query computes every candidate item's size (for its 1 MB page limit) before the range
    condition, so ``begins_with(sk, "DEP#")`` sized every verdict item of the partition at every call
    (30 % of the emulator's CPU after fifty rehearsals). An item's size is remembered on the item; an
    update (the only in-place change) forgets it; a put makes a new item."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import Item

    size_original = Item.size
    update_original = models.DynamoDBBackend.update_item

    def size(self):
        known = self.__dict__.get("_stageflow_size")
        if known is None:
            known = size_original(self)
            self.__dict__["_stageflow_size"] = known
        return known

    def update_item(self, table_name, key, *args, **kwargs):
        try:
            return update_original(self, table_name, key, *args, **kwargs)
        finally:
            try:
                table = self.get_table(table_name)
                item = table.get_item(*self.get_keys_value(table, key))
                if item is not None:
                    item.__dict__.pop("_stageflow_size", None)
            except Exception:  # noqa: BLE001, S110 - no such table or item: nothing remembered
                pass

    Item.size = size
    models.DynamoDBBackend.update_item = update_item


def _patch_query() -> None:
    """moto's ``Table.query`` starts from ``all_items()``: every item of the table, sorted with
    DynamoType comparisons, at every query; then it keeps the partition (or the index's matches),
    sorts those again and applies the range condition. With a hundred rehearsals' verdict items in the
    history table that was 100-180 ms per history read (five or more per command). Inside a query,
    ``all_items()`` now hands over only what moto's own filters could keep: a table query gets its
    partition (with ``begins_with`` on the sort key, only the keys with that prefix); an index query
    gets every item unsorted (moto sorts the matches itself, by keys that are unique). moto's code
    then filters, sorts, pages and counts exactly as before."""
    import inspect

    from moto.dynamodb.models.table import Table

    query_original = Table.query
    all_original = Table.all_items
    signature = inspect.signature(query_original)

    def query(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs).arguments
            spec = (
                self,
                bound.get("hash_key"),
                bound.get("range_comparison"),
                bound.get("range_objs") or [],
                bound.get("index_name"),
            )
        except TypeError:
            spec = None
        token = _QUERY.set(spec)
        try:
            return query_original(self, *args, **kwargs)
        finally:
            _QUERY.reset(token)

    def all_items(self):
        spec = _QUERY.get()
        if spec is None or spec[0] is not self:
            return all_original(self)
        _table, hash_key, comparison, range_objs, index_name = spec
        if index_name:
            if not self.range_key_attr:
                return list(self.items.values())
            return [item for part in self.items.values() for item in part.values()]
        if not self.range_key_attr or hash_key is None:
            return all_original(self)
        part = self.items.get(hash_key)  # keyed by DynamoType, as moto's get_item reads it
        if part is None:
            return []  # moto would keep nothing of the other partitions either
        items = list(part.values())
        if comparison == "BEGINS_WITH" and len(range_objs) == 1 and range_objs[0].type == "S":
            prefix = range_objs[0].value
            items = [
                i for i in items if i.range_key is not None and str(i.range_key.value).startswith(prefix)
            ]
        return items

    Table.query = query
    Table.all_items = all_items


# -- CloudWatch --------------------------------------------------------------------------------------
class _Index:
    """Datapoints per (namespace, name), sorted by timestamp; rebuilt when the store changed size
    in a way the index did not see (a reset makes a new backend, and with it a new index)."""

    def __init__(self):
        self.count = 0
        self.buckets: dict[tuple[str, str], tuple[list, list]] = {}

    def add(self, datums) -> None:
        for md in datums:
            times, items = self.buckets.setdefault((md.namespace, md.name), ([], []))
            i = bisect.bisect_right(times, md.timestamp)
            times.insert(i, md.timestamp)
            items.insert(i, md)
            self.count += 1


def _index(backend) -> _Index:
    idx = backend.__dict__.get("_stageflow_index")
    if idx is None or idx.count != len(backend.metric_data):
        idx = _Index()
        idx.add(backend.metric_data)
        backend.__dict__["_stageflow_index"] = idx
    return idx


def _patch_get_metric_statistics() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    put_original = CloudWatchBackend.put_metric_data
    gms_original = CloudWatchBackend.get_metric_statistics
    gmd_original = CloudWatchBackend.get_metric_data
    all_original = CloudWatchBackend.get_all_metrics

    def put_metric_data(self, namespace, metric_data):
        with _LOCK:
            before = len(self.metric_data)
            result = put_original(self, namespace, metric_data)
            idx = self.__dict__.get("_stageflow_index")
            if idx is not None and idx.count == before:
                try:
                    idx.add(self.metric_data[before:])
                except TypeError:  # timestamps that do not compare: index no more, moto scans
                    self.__dict__.pop("_stageflow_index", None)
            return result

    def get_metric_statistics(self, namespace, metric_name, start_time, end_time, *args, **kwargs):
        token = _GMS_QUERY.set((namespace, metric_name, start_time, end_time))
        try:
            return gms_original(self, namespace, metric_name, start_time, end_time, *args, **kwargs)
        finally:
            _GMS_QUERY.reset(token)

    def get_metric_data(self, queries, start_time, end_time, *args, **kwargs):
        names = set()
        for q in queries:
            if "MetricStat" not in q:  # metric math or insights: moto's own scan, unchanged
                names = None
                break
            names.add(q["MetricStat"]["Metric"]["MetricName"])
        token = _GMD_QUERY.set((names, start_time, end_time) if names is not None else None)
        try:
            return gmd_original(self, queries, start_time, end_time, *args, **kwargs)
        finally:
            _GMD_QUERY.reset(token)

    def get_all_metrics(self):
        gmd = _GMD_QUERY.get()
        if gmd is not None:
            names, start, end = gmd
            try:
                start, end = start.replace(microsecond=0), end.replace(microsecond=0)
                found = []
                with _LOCK:
                    for (_ns, name), (times, items) in _index(self).buckets.items():
                        if name in names:
                            found += items[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)]
            except TypeError:
                return all_original(self)
            return found + self.aws_metric_data
        q = _GMS_QUERY.get()
        if q is None:
            return all_original(self)
        namespace, name, start, end = q
        try:
            start, end = start.replace(microsecond=0), end.replace(microsecond=0)
            with _LOCK:
                times, items = _index(self).buckets.get((namespace, name), ([], []))
                lo, hi = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
                found = items[lo:hi]
        except TypeError:
            return all_original(self)
        return found + self.aws_metric_data  # moto filters these exactly as before

    CloudWatchBackend.put_metric_data = put_metric_data
    CloudWatchBackend.get_metric_statistics = get_metric_statistics
    CloudWatchBackend.get_metric_data = get_metric_data
    CloudWatchBackend.get_all_metrics = get_all_metrics


_ALIAS_LOCK = threading.Lock()


def _patch_alias_revisions() -> None:
    """UpdateAlias honours RevisionId (412 PreconditionFailedException when stale); every update gets
    a new RevisionId, as in AWS."""
    import json
    import uuid
    from urllib.parse import unquote

    from moto.awslambda.exceptions import PreconditionFailedException
    from moto.awslambda.models import LambdaAlias
    from moto.awslambda.responses import LambdaResponse

    update = LambdaAlias.update
    respond = LambdaResponse.update_alias

    def alias_update(self, *args, **kwargs):
        update(self, *args, **kwargs)
        self.revision_id = str(uuid.uuid4())

    def update_alias(self):
        revision = (json.loads(self.body or "{}") or {}).get("RevisionId")
        with _ALIAS_LOCK:  # the check and the update as one step: exactly one of two racers wins
            if revision:
                function_name = unquote(self.path.rsplit("/")[-3])
                alias_name = unquote(self.path.rsplit("/", 2)[-1])
                alias = self.backend.get_alias(alias_name, function_name)
                if alias.revision_id != revision:
                    raise PreconditionFailedException(
                        "The Revision Id provided does not match the latest Revision Id. "
                        "Call the GetAlias API to retrieve the latest Revision Id"
                    )
            return respond(self)

    LambdaAlias.update = alias_update
    LambdaResponse.update_alias = update_alias
