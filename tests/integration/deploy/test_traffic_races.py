"""Issue 24 item 6 (findings 7 and 8): traffic races against the emulator over real HTTP.

- The emulator's UpdateAlias honours RevisionId (local/moto_fixes.py), as Lambda does.
- A canary step whose UpdateAlias is slow (the fault proxy delays it) while a rollback runs: the step
  loses (its RevisionId is stale), leaves the alias alone and stops; alias and history agree. 20 seeded
  runs, each short (a 0.4 s delay and a rollback started at a seeded moment inside it).
- 5 concurrent rollbacks of a canary at 10 %: exactly one moves traffic and records what it moved; the
  others report that another run did.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from stageflow.deploy.driver import Driver
from stageflow.deploy.records import Deployment, State
from stageflow.deploy.traffic import AliasTraffic
from stageflow.history.dynamo import ConcurrentUpdate
from stageflow.isotime import iso
from stageflow.notify import Notifiers
from stageflow.report import Reporter
from stageflow.rollback.core import RollbackRequest, rollback
from tests.helpers.faultproxy import Fault, FaultProxy

from .test_rollback_emulator import setup_canary_in_flight

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(600)]
QUIET = Reporter(quiet=True)
DELAY = 0.4  # the slow UpdateAlias of a seeded run (finding 7 used 8 s; the race is the same)


class WallClock:
    def now(self):
        return datetime.now(UTC)

    def sleep(self, seconds):
        time.sleep(seconds)


def lambda_client(endpoint: str):
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # pragma: allowlist secret
        config=BotoConfig(retries={"max_attempts": 1}, read_timeout=30),
    )


def in_flight(history, pub, weight: int, n: int) -> Deployment:
    dep = Deployment(
        deployment_id=f"20261207T0000{n:02d}Z-race{n:02d}",
        environment="dev",
        service="sample-api",
        version=pub.version,
        previous_version=pub.previous_version,
        status="in_progress",
        phase="baking",
        started_at=iso(datetime.now(UTC)),
        who="tests",
        state=State.from_json({"phase": "baking", "step": 0, "weight": weight}),
    )
    history.create(dep)
    history.acquire_lock(dep.deployment_id, "tests", datetime.now(UTC))
    return history.get(dep.deployment_id)


def test_the_emulators_update_alias_honours_revision_id(project, emulator_state, aws):
    f, out, pub, traffic = setup_canary_in_flight(project, emulator_state)
    lam = aws.client("lambda")
    seen = lam.get_alias(FunctionName=out.function_name, Name=out.alias_name)["RevisionId"]
    moved = lam.update_alias(
        FunctionName=out.function_name,
        Name=out.alias_name,
        FunctionVersion=pub.previous_version,
        RevisionId=seen,
    )
    assert moved["RevisionId"] != seen  # every update is a new revision
    with pytest.raises(ClientError) as stale:
        lam.update_alias(
            FunctionName=out.function_name,
            Name=out.alias_name,
            FunctionVersion=pub.version,
            RevisionId=seen,
        )
    assert stale.value.response["Error"]["Code"] == "PreconditionFailedException"
    after = lam.get_alias(FunctionName=out.function_name, Name=out.alias_name)
    assert after["FunctionVersion"] == pub.previous_version and after["RevisionId"] == moved["RevisionId"]


def test_a_slow_canary_step_never_undoes_a_rollback_in_20_seeded_runs(project, emulator_state, aws, emulator):
    f, out, pub, _ = setup_canary_in_flight(project, emulator_state)
    ctx = f.environment("dev")
    history = ctx.history
    stable, canary = pub.previous_version, pub.version
    outcomes = []
    with FaultProxy(emulator.endpoint, [Fault("slow", 1.0, "lambda", "UpdateAlias", delay=DELAY)]) as proxy:
        for seed in range(20):
            rng = random.Random(seed)
            direct = AliasTraffic(aws.client("lambda"), out.function_name, out.alias_name)
            direct.set_canary(stable, canary, 10)
            dep = in_flight(history, pub, 10, seed)
            slow = AliasTraffic(lambda_client(proxy.endpoint), out.function_name, out.alias_name)
            slow.state()  # the canary's view after its 10 % step (its RevisionId)
            driver = Driver(
                env=ctx.env,
                history=history,
                traffic=slow,
                gates=None,
                notifier=Notifiers([]),
                clock=WallClock(),
                reporter=QUIET,
                pre_traffic=None,
            )
            step: dict = {}

            def shift(driver=driver, dep=dep, step=step):
                try:
                    step["event"] = driver._set_weight(dep, 50)
                except ConcurrentUpdate as exc:
                    step["stopped"] = exc.one_line()

            t = threading.Thread(target=shift)
            t.start()
            time.sleep(rng.uniform(0.0, DELAY * 1.5))  # the rollback starts at a seeded moment
            req = RollbackRequest("dev", "sample-api", reason="race", who="tests")
            res = rollback(
                req,
                history=history,
                traffic=AliasTraffic(aws.client("lambda"), out.function_name, out.alias_name),
                notifier=Notifiers([]),
                reporter=QUIET,
                now=datetime.now(UTC),
            )
            t.join(30)
            alias = direct.state()
            record = history.get(dep.deployment_id)
            agree = record.status == "rolled_back" and alias.settled and alias.primary == stable
            outcomes.append((seed, agree, alias.weights, record.status, res.changed, sorted(step)))
    assert [o for o in outcomes if not o[1]] == [], outcomes
    assert all(o[4] for o in outcomes)  # every rollback moved the split (10 % or 50 %) back
    # the race really happened: some steps lost it (stopped, alias left alone) and none undid a rollback
    assert any("stopped" in o[5] for o in outcomes), outcomes


def test_five_concurrent_rollbacks_one_mover_and_a_true_record(project, emulator_state, aws, emulator):
    f, out, pub, traffic = setup_canary_in_flight(project, emulator_state, weight=10)
    ctx = f.environment("dev")
    dep = in_flight(ctx.history, pub, 10, 99)
    split = traffic.state().weights
    assert split == {pub.previous_version: 90, pub.version: 10}
    barrier = threading.Barrier(5)
    results, errors = [], []

    def one(i):
        lam = lambda_client(proxy.endpoint)
        history = type(ctx.history)(
            aws.client("dynamodb"), ctx.history.table, ctx.history.service, ctx.history.environment
        )
        req = RollbackRequest("dev", "sample-api", reason=f"on-call {i}", who=f"oncall{i}")
        barrier.wait()
        try:
            results.append(
                rollback(
                    req,
                    history=history,
                    traffic=AliasTraffic(lam, out.function_name, out.alias_name),
                    notifier=Notifiers([]),
                    reporter=QUIET,
                    now=datetime.now(UTC),
                )
            )
        except Exception as exc:  # noqa: BLE001 - every run must report, none may fail
            errors.append(exc)

    # a slow UpdateAlias widens the window in which all five have read the split and try to move it
    with FaultProxy(emulator.endpoint, [Fault("slow", 1.0, "lambda", "UpdateAlias", delay=0.5)]) as proxy:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    movers = [r for r in results if r.changed]
    assert len(results) == 5 and len(movers) == 1
    assert movers[0].from_weights == split and movers[0].deployment_id == dep.deployment_id
    assert all(not r.changed for r in results if r is not movers[0])
    events = [e for e in ctx.history.events() if e["kind"] == "rollback"]
    assert len(events) == 1 and events[0]["from_weights"] == split
    assert events[0]["to_version"] == pub.previous_version and events[0]["reason"] == movers[0].reason
    assert traffic.state().weights == {pub.previous_version: 100}
    assert ctx.history.get(dep.deployment_id).status == "rolled_back"
