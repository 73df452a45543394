"""The emulator's Invoke runs the function's exact zip with the runtime's Python (local/runtime.py).

Real emulator over HTTP, real child interpreters (the CPython of the function's runtime, found on PATH
or under pyenv), zips built here. Nothing is mocked.
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from stageflow import pythons

pytestmark = pytest.mark.emulator

RUNTIME = "python3.11"  # the Lambda runtime the tests' functions name; its interpreter must exist here

HANDLER = """
import json, os, time
import settings  # read at import, like a real service's settings module

def handler(event, context):
    if event.get("raise"):
        raise ValueError("asked to fail: " + event["raise"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("aws"):
        import boto3
        names = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
        return {"functions": sorted(names)}
    print("handled", event.get("n"))
    return {"greeting": settings.GREETING, "version": context.function_version,
            "remaining_ok": context.get_remaining_time_in_millis() > 0, "event": event}
"""


def make_zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


SERVICE_ZIP = {
    "app/__init__.py": "",
    "app/main.py": HANDLER,
    "settings.py": "import os\nGREETING = os.environ['GREETING']\n",
}


ROLE = "arn:aws:iam::123456789012:role/stageflow-runtime-test"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip


@pytest.fixture
def lam(aws):
    pythons.find(RUNTIME)  # the machine must carry the runtime's interpreter (CI's image does)
    aws.client("iam").create_role(
        RoleName="stageflow-runtime-test", AssumeRolePolicyDocument=json.dumps(TRUST)
    )
    return aws.client("lambda")


def create(
    lam, name: str, files: dict[str, str], *, env: dict | None = None, timeout: int = 10, **kw
) -> dict:
    return lam.create_function(
        FunctionName=name,
        Runtime=kw.pop("runtime", RUNTIME),
        Role=ROLE,
        Handler=kw.pop("handler", "app.main.handler"),
        Code={"ZipFile": make_zip(files)},
        Timeout=timeout,
        Environment={"Variables": env or {"GREETING": "hello"}},
        **kw,
    )


def invoke(lam, name: str, event: dict, **kw) -> tuple[dict, object]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kw)
    return resp, json.loads(resp["Payload"].read())


def test_invoke_runs_the_zip_with_its_environment(lam):
    create(lam, "svc", SERVICE_ZIP)
    resp, body = invoke(lam, "svc", {"n": 1}, LogType="Tail")
    assert "FunctionError" not in resp
    assert body["greeting"] == "hello" and body["event"] == {"n": 1} and body["remaining_ok"] is True
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "handled 1" in base64.b64decode(resp["LogResult"]).decode()


def test_unhandled_error_is_a_function_error(lam):
    create(lam, "svc", SERVICE_ZIP)
    resp, body = invoke(lam, "svc", {"raise": "boom"})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "asked to fail: boom"


def test_a_module_missing_from_the_zip_fails_as_in_lambda(lam):
    # yaml is installed in stageflow's own environment: the function must not see it
    files = {"app/__init__.py": "", "app/main.py": "import yaml\n\ndef handler(e, c):\n    return 1\n"}
    create(lam, "svc", files)
    resp, body = invoke(lam, "svc", {})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'yaml'" in body["errorMessage"]


def test_settings_missing_at_import_names_the_variable(lam):
    create(lam, "svc", SERVICE_ZIP, env={"OTHER": "x"})
    _, body = invoke(lam, "svc", {})
    assert body["errorType"] == "Runtime.ImportModuleError" and "GREETING" in body["errorMessage"]


def test_timeout_is_enforced(lam):
    create(lam, "svc", SERVICE_ZIP, timeout=1)
    start = time.monotonic()
    resp, body = invoke(lam, "svc", {"sleep": 30})
    assert time.monotonic() - start < 15
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    _, body = invoke(lam, "svc", {"n": 2})  # a fresh environment serves the next call
    assert body["greeting"] == "hello"


def test_boto3_inside_the_function_talks_to_the_emulator(lam):
    create(lam, "svc", SERVICE_ZIP)
    _, body = invoke(lam, "svc", {"aws": True})
    assert body == {"functions": ["svc"]}


def test_alias_weights_pick_the_version_and_publish_per_version_metrics(lam, aws):
    create(lam, "svc", SERVICE_ZIP, Publish=True)  # version 1
    lam.update_function_configuration(FunctionName="svc", Environment={"Variables": {"GREETING": "v2"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName="svc")
    assert lam.publish_version(FunctionName="svc")["Version"] == "2"
    lam.create_alias(
        FunctionName="svc",
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )
    start = datetime.now(UTC) - timedelta(minutes=1)
    seen = {"1": 0, "2": 0}
    for i in range(120):
        resp, body = invoke(lam, "svc", {"n": i}, Qualifier="live")
        version = resp["ExecutedVersion"]
        seen[version] += 1
        assert body["greeting"] == ("v2" if version == "2" else "hello")
    assert 12 <= seen["2"] <= 66, seen  # 36 expected; ±4.5 standard deviations
    cw = aws.client("cloudwatch")
    for version, count in seen.items():
        stats = cw.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "FunctionName", "Value": "svc"},
                {"Name": "Resource", "Value": "svc:live"},
                {"Name": "ExecutedVersion", "Value": version},
            ],
            StartTime=start,
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum"],
        )
        assert sum(p["Sum"] for p in stats["Datapoints"]) == count


def test_arm64_is_refused_with_a_reason(lam):
    from botocore.exceptions import ClientError

    create(lam, "svc", SERVICE_ZIP, Architectures=["arm64"])
    with pytest.raises(ClientError) as info:
        lam.invoke(FunctionName="svc", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "InvalidRuntimeException"
    assert "arm64" in info.value.response["Error"]["Message"]
