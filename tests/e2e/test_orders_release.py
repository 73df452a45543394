"""Several functions, one release, end to end (issue 23 item 2): the orders fixture service (api and
worker, one package with pydantic, settings read at import) on the emulator, from its stageflow.toml
alone, through the real CLI.

One environment serves the module (``orders``: Terraform applies dev once); the tests run in file order
on it, each from the versions the one before left (read, never assumed):
- each function reads back as stageflow.toml says, and its ``live`` alias runs the zip (the local
  runtime) and answers with its environment;
- a change ships to both functions as one release; ``status --json`` lists each function's weights;
- a failing gate in one function (the scenario's ``functions.worker``) rolls both back, and the verdict
  names that function;
- ``stageflow rollback`` restores both, and so does the rollback function Terraform deployed (its zip
  run with exactly Terraform's environment) on an alarm of one function.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.test_rollback_function import DRIVER, alarm_in, alarm_sns_event, boto3_only, extract  # noqa: F401
from tests.helpers.orders import orders_project, require_mirror

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1500)]
KEYS = ("api", "worker")
NAMES = {"api": "orders-api-dev", "worker": "orders-worker-dev"}
HELLO = {"version": "2.0", "rawPath": "/hello"}


@dataclass
class Orders:
    project: Path
    state: Path
    endpoint: str
    aws: object  # stageflow.aws.AwsClients on the module's emulator

    def cli(self, *args: str, timeout: float = 600):
        return run_cli(
            "--config",
            str(self.project / "stageflow.toml"),
            "--local",
            *args,
            env={"STAGEFLOW_STATE_DIR": str(self.state)},
            timeout=timeout,
        )

    def status(self) -> dict:
        r = self.cli("--json", "status", "dev")
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout)

    def weights(self) -> dict[str, dict[str, int]]:
        return {f["key"]: f["weights"] for f in self.status()["functions"]}

    def invoke(self, key: str, event: dict) -> tuple[str, dict]:
        """The ``live`` alias of ``key`` invoked as a client would: (executed version, answer)."""
        r = self.aws.client("lambda").invoke(
            FunctionName=NAMES[key], Qualifier="live", Payload=json.dumps(event).encode()
        )
        assert "FunctionError" not in r, r["Payload"].read()
        return r["ExecutedVersion"], json.loads(r["Payload"].read())

    def event(self, key: str) -> dict:
        name = "api-health.json" if key == "api" else "worker-order.json"
        return json.loads((self.project / "events" / name).read_text())

    def ship(self, marker: str) -> None:
        """A change to both functions' code: each answer carries ``release = marker``."""
        for key, old in (("api", '"stage": settings.STAGE}'), ("worker", '"stage": settings.STAGE}')):
            path = self.project / "svc" / "orders" / f"{key}.py"
            text = path.read_text()
            if "RELEASE = " not in text:
                text = text.replace(old, old[:-1] + ', "release": RELEASE}') + '\nRELEASE = "none"\n'
            start = text.index("RELEASE = ")
            end = text.index("\n", start)
            path.write_text(text[:start] + f"RELEASE = {json.dumps(marker)}" + text[end:])


@pytest.fixture(scope="module")
def orders(tmp_path_factory):
    from stageflow.aws import AwsClients, AwsTarget
    from stageflow.local.emulator import Emulator

    require_mirror()
    base = tmp_path_factory.mktemp("orders-e2e")
    project, state = orders_project(base / "orders"), base / "state"
    emu = Emulator(state)
    status, _ = emu.up()
    try:
        aws = AwsClients(AwsTarget("eu-west-1", True, status.endpoint))
        env = Orders(project, state, status.endpoint, aws)
        r = env.cli("--json", "apply", "dev", timeout=900)
        assert r.returncode == 0, r.stderr[-4000:]
        yield env
    finally:
        emu.down()
        shutil.rmtree(base / "orders" / "build", ignore_errors=True)


def test_each_function_is_as_configured_and_its_live_alias_runs_the_zip(orders):
    from stageflow.config import load
    from stageflow.function_config import wanted_all

    outputs = json.loads((orders.state / "outputs" / "local-dev.json").read_text())["outputs"]
    assert {f["key"]: (f["function_name"], f["alias_name"]) for f in outputs["functions"]} == {
        k: (NAMES[k], "live") for k in KEYS
    }
    assert outputs["function_name"] == "orders-api-dev"  # the first (sorted keys)
    assert {"orders-api-errors-dev", "orders-worker-throttles-dev"} <= set(outputs["alarm_names"])
    lam = orders.aws.client("lambda")
    specs = wanted_all(load(orders.project / "stageflow.toml"), "dev")
    assert specs["api"].environment == {"GREETING": "hello from orders", "LOG_LEVEL": "DEBUG", "STAGE": "dev"}
    assert (specs["api"].timeout_s, specs["worker"].memory_mb) == (10, 512)
    for key in KEYS:
        spec, fn = specs[key], lam.get_function_configuration(FunctionName=NAMES[key])
        assert (fn["Handler"], fn["Runtime"]) == (spec.handler, "python3.12"), key
        assert (fn["MemorySize"], fn["Timeout"]) == (spec.memory_mb, spec.timeout_s), key
        assert fn["Environment"]["Variables"] == {
            "SERVICE_NAME": "orders",
            "ENVIRONMENT": "dev",
            "PARAMETER_PREFIX": "/orders/dev",
            **spec.environment,
        }, key
    rollback = lam.get_function_configuration(FunctionName="orders-rollback-dev")["Environment"]["Variables"]
    assert json.loads(rollback["STAGEFLOW_FUNCTIONS"]) == NAMES
    # the zip runs (pydantic's compiled core imports) with the function's own merged environment
    _, hello = orders.invoke("api", HELLO)
    assert json.loads(hello["body"]) == {"message": "hello from orders", "stage": "dev"}
    _, worked = orders.invoke("worker", orders.event("worker"))
    assert worked == {"accepted": 1, "rejected": 0, "stage": "dev"}
    assert orders.weights() == {"api": {"1": 100}, "worker": {"1": 100}}
    plan = orders.cli("--json", "plan", "dev")
    assert plan.returncode == 0, plan.stderr[-3000:]
    changed = {(c["address"], c["action"]) for c in json.loads(plan.stdout)["summary"]["resources"]}
    # applied once, from stageflow.toml alone: a second plan changes nothing (the front door's snapshot
    # was redeployed here until its trigger hashed an empty cache key list one way)
    assert changed == set(), changed


def _version(weights: dict[str, int]) -> str:
    ((version, share),) = weights.items()
    assert share == 100, weights
    return version


def test_a_change_ships_to_both_functions_as_one_release(orders):
    before = {k: _version(w) for k, w in orders.weights().items()}
    orders.ship("one")
    r = orders.cli("canary", "dev")
    assert r.returncode == 0, r.stderr[-4000:]
    st = orders.status()
    new = {f["key"]: _version(f["weights"]) for f in st["functions"]}
    assert all(int(new[k]) > int(before[k]) for k in KEYS), (before, new)
    assert st["status"] == "succeeded" and st["release"] == {
        k: {"function": NAMES[k], "alias": "live", "from_version": before[k], "to_version": new[k]}
        for k in KEYS
    }
    hist = json.loads(orders.cli("--json", "history", "dev").stdout)["deployments"]
    assert len([d for d in hist if d["deployment_id"] == st["deployment_id"]]) == 1  # one record
    for key in KEYS:  # each alias runs the new zip
        executed, answer = orders.invoke(key, HELLO if key == "api" else orders.event("worker"))
        body = json.loads(answer["body"]) if key == "api" else answer
        assert (executed, body["release"]) == (new[key], "one"), key
    text = orders.cli("status", "dev").stdout
    assert "dev: 2 functions, one release" in text
    assert f"worker: orders-worker-dev:live serves v{new['worker']} 100%" in text


def test_a_failing_gate_in_one_function_rolls_both_back_and_names_it(orders, tmp_path):
    before = {k: _version(w) for k, w in orders.weights().items()}
    healthy = {"error_rate": 0.003, "latency_ms": {"median": 100, "p95": 400}}
    scenario = tmp_path / "worker-fails.json"
    scenario.write_text(
        json.dumps(
            {
                "name": "the worker's canary fails a quarter of its calls",
                "seed": 3,
                "traffic_per_minute": 600,
                "stable": healthy,
                "canary": healthy,
                "functions": {"worker": {"canary": {**healthy, "error_rate": 0.25}}},
                "expect": "rollback",
            }
        )
    )
    orders.ship("bad-worker")
    r = orders.cli("canary", "dev", "--scenario", str(scenario))
    assert r.returncode == 4, r.stderr[-4000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("stageflow: error: release (api v")
    assert "rolled back in dev: worker: gate errors" in last
    assert "api: gate errors" not in last  # the healthy function is not blamed
    st = orders.status()
    assert {f["key"]: f["weights"] for f in st["functions"]} == {k: {before[k]: 100} for k in KEYS}
    assert st["status"] == "rolled_back" and st["reason"].startswith("worker: gate errors")
    assert all(st["release"][k]["to_version"] != before[k] for k in KEYS)  # both had moved
    for key in KEYS:  # and serve the old code again
        executed, answer = orders.invoke(key, HELLO if key == "api" else orders.event("worker"))
        body = json.loads(answer["body"]) if key == "api" else answer
        assert (executed, body["release"]) == (before[key], "one"), key


def test_stageflow_rollback_restores_both(orders):
    before = {k: _version(w) for k, w in orders.weights().items()}
    orders.ship("two")
    r = orders.cli("canary", "dev")
    assert r.returncode == 0, r.stderr[-4000:]
    shipped = {k: _version(w) for k, w in orders.weights().items()}
    assert shipped != before
    rb = orders.cli("rollback", "dev")
    assert rb.returncode == 0, rb.stderr[-3000:]
    assert "every function restored" in rb.stderr
    assert orders.weights() == {k: {before[k]: 100} for k in KEYS}
    last = orders.status()["last_rollback"]
    assert last["trigger"] == "manual"
    assert {k: f["to_version"] for k, f in last["functions"].items()} == before
    _, hello = orders.invoke("api", HELLO)
    assert json.loads(hello["body"])["release"] == "one"


def _run_rollback_function(
    orders, tmp_path: Path, boto3_dir: Path, event: dict
) -> subprocess.CompletedProcess:
    """The rollback zip Terraform deployed, extracted and run as the Lambda runtime would, with exactly
    the environment Terraform set on orders-rollback-dev (tests/e2e/test_rollback_function.py)."""
    cfg = orders.aws.client("lambda").get_function_configuration(FunctionName="orders-rollback-dev")
    code = extract(orders.project / "build" / "lambda" / "stageflow-rollback.zip", tmp_path / "task")
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "event.json").write_text(json.dumps(event))
    env = {
        **cfg["Environment"]["Variables"],
        "AWS_ENDPOINT_URL": orders.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    }
    driver = [sys.executable, "-I", "-S", str(tmp_path / "driver.py"), str(code), str(boto3_dir)]
    return subprocess.run(
        [*driver, cfg["Handler"], str(tmp_path / "event.json")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_rollback_function_restores_both_on_one_functions_alarm(orders, boto3_only, tmp_path):  # noqa: F811
    before = {k: _version(w) for k, w in orders.weights().items()}
    orders.ship("three")
    r = orders.cli("canary", "dev")
    assert r.returncode == 0, r.stderr[-4000:]
    assert {k: _version(w) for k, w in orders.weights().items()} != before
    topic = json.loads((orders.state / "outputs" / "local-dev.json").read_text())["outputs"]["topic_arn"]
    alarm = "orders-worker-errors-dev"
    with alarm_in(orders.aws, alarm):
        ran = _run_rollback_function(orders, tmp_path, boto3_only, alarm_sns_event(orders.aws, alarm, topic))
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert orders.weights() == {k: {before[k]: 100} for k in KEYS}
    # the function records at wall-clock time, the local CLI on its virtual clock (ahead): find its event
    from stageflow.history import DynamoHistory

    table = json.loads((orders.state / "outputs" / "local-dev.json").read_text())["outputs"]["history_table"]
    history = DynamoHistory(orders.aws.client("dynamodb"), table, "orders", "dev")
    by_alarm = [e for e in history.events() if e.get("kind") == "rollback" and e.get("trigger") == "alarm"]
    assert by_alarm and by_alarm[0]["who"] == f"alarm:{alarm}"
    assert {k: f["to_version"] for k, f in by_alarm[0]["functions"].items()} == before
