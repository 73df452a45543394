"""No secret value at rest in plain text (issue 24, Build items 1 and 2; findings 1 and 2).

On the session's Terraform-built dev environment (tests/conftest.py ``deployed``), through the real CLI:
a value an older stageflow left in the function's environment, `drift`, `deploy` with three secrets, the
function reading them at run time through ``stageflow_secrets`` (the local runtime against the emulator),
a plain configuration change re-applied by Terraform, `secrets dev rotate`, `drift`, `plan`, `rollback`.
Then a plain-text scan (tests/helpers/leakscan.py) finds none of the values in: every version of every
Terraform state object, plan files, the checkout (build/, .stageflow, reports), the state directory,
every command's output, every function version's configuration and the history table.

Fails on main: there the deploy writes the values into the function's environment, so Terraform's
refresh writes them into the state (finding 1), and `drift` does not register the deployed values with
the redactor, so it prints a value left in the environment (finding 2).
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_canary_cli import fast_project, run  # noqa: F401 - the fixture is used by name
from tests.helpers.leakscan import function_configurations, s3_object_versions, scan_for_values

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1800)]

DB_PASSWORD = 'at-rest-pw-"Qx7"/+?&=9'
API_TOKEN = "tok_at_rest_5b1e8c2d7a"
API_HOST = "db-at-rest.internal.example"
NEW_PASSWORD = "rotated-at-rest-Kp42!m"
LEGACY = "legacy-plain-pw-77f3c1"  # what an older stageflow left in the function's environment
VALUES = [DB_PASSWORD, API_TOKEN, API_HOST, NEW_PASSWORD]

SECRETS = """
[environments.dev.secrets]
DB_PASSWORD = "secretsmanager:sample-api/dev/at-rest-db#password"
API_TOKEN = "secretsmanager:sample-api/dev/at-rest-token"
API_HOST = "ssm:/sample-api/dev/at-rest/host"
"""
STATE_BUCKET = "stageflow-local-tfstate"


def _seed(aws) -> None:
    sm, ssm = aws.client("secretsmanager"), aws.client("ssm")
    doc = json.dumps({"username": "app", "password": DB_PASSWORD})
    for name, value in (("sample-api/dev/at-rest-db", doc), ("sample-api/dev/at-rest-token", API_TOKEN)):
        try:
            sm.create_secret(Name=name, SecretString=value)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=name, SecretString=value)
    ssm.put_parameter(
        Name="/sample-api/dev/at-rest/host", Value=API_HOST, Type="SecureString", Overwrite=True
    )


def _invoke_secrets(deployed, qualifier: str) -> dict:
    event = {"rawPath": "/secrets", "requestContext": {"http": {"method": "GET"}}}
    resp = deployed.lam().invoke(
        FunctionName=deployed.function, Qualifier=qualifier, Payload=json.dumps(event)
    )
    payload = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, payload
    return json.loads(payload["body"])["secrets"]


def _variables(deployed, qualifier: str = "$LATEST") -> dict:
    cfg = deployed.lam().get_function_configuration(FunctionName=deployed.function, Qualifier=qualifier)
    return (cfg.get("Environment") or {}).get("Variables") or {}


def _every_state_version(aws) -> dict[str, bytes]:
    return s3_object_versions(aws.client("s3"), STATE_BUCKET)


def _every_function_version(deployed) -> dict[str, str]:
    return function_configurations(deployed.lam(), deployed.function)


def _history_items(deployed) -> str:
    ddb = deployed.aws.client("dynamodb")
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=deployed.outputs["history_table"]):
        items += page["Items"]
    return json.dumps(items, default=str)


def test_no_secret_value_at_rest_through_deploy_change_rotation_drift_plan_and_rollback(
    fast_project,  # noqa: F811
    deployed,
):
    project, aws, outputs = fast_project, deployed.aws, {}
    _seed(aws)
    (project / "stageflow.toml").write_text((project / "stageflow.toml").read_text() + SECRETS)

    def cli(label, *args, input=None, ok=(0,)):
        r = run(project, deployed, *args, input=input, timeout=900)
        outputs[f"{label}.stdout"], outputs[f"{label}.stderr"] = r.stdout, r.stderr
        assert r.returncode in ok, f"{label}: exit {r.returncode}\n{r.stderr[-4000:]}"
        return r

    # an older stageflow merged a value into the function's environment: drift must not print it
    lam = deployed.lam()
    env = _variables(deployed)
    lam.update_function_configuration(
        FunctionName=deployed.function, Environment={"Variables": {**env, "DB_PASSWORD": LEGACY}}
    )
    lam.get_waiter("function_updated_v2").wait(FunctionName=deployed.function)
    cli("drift-legacy", "drift", "dev", ok=(0, 1))

    # deploy: the environment carries pinned references; the legacy value is removed from $LATEST
    before = deployed.latest_version()
    cli("deploy", "deploy", "dev")
    latest = _variables(deployed)
    assert "DB_PASSWORD" not in latest
    refs = {k: v for k, v in latest.items() if k.startswith("STAGEFLOW_SECRET_")}
    assert set(refs) == {
        "STAGEFLOW_SECRET_DB_PASSWORD",
        "STAGEFLOW_SECRET_API_TOKEN",
        "STAGEFLOW_SECRET_API_HOST",
    }
    assert refs["STAGEFLOW_SECRET_API_HOST"].startswith("ssm:/sample-api/dev/at-rest/host:")
    assert "?versionId=" in refs["STAGEFLOW_SECRET_DB_PASSWORD"] and refs[
        "STAGEFLOW_SECRET_DB_PASSWORD"
    ].endswith("#password")
    first = str(deployed.latest_version())
    assert int(first) > before
    # the function reads every secret at run time (the local runtime runs the zip against the emulator)
    read = _invoke_secrets(deployed, deployed.outputs["alias_name"])
    assert {n: s["read"] for n, s in read.items()} == {
        "API_HOST": True,
        "API_TOKEN": True,
        "DB_PASSWORD": True,
    }
    old_version = read["DB_PASSWORD"]["version"]

    # a plain configuration change Terraform applies: the function's state is written again (refresh)
    cfg = project / "stageflow.toml"
    cfg.write_text(cfg.read_text().replace("memory_mb = 256", "memory_mb = 320", 1))
    cli("apply", "apply", "dev")

    # rotation: a new Secrets Manager version, shipped as a new function version through the canary
    cli("rotate", "secrets", "dev", "rotate", "DB_PASSWORD", "--stdin", input=NEW_PASSWORD + "\n")
    rotated = str(deployed.latest_version())
    assert int(rotated) > int(first)
    now = _invoke_secrets(deployed, deployed.outputs["alias_name"])
    assert now["DB_PASSWORD"]["read"] and now["DB_PASSWORD"]["version"] != old_version
    current = aws.client("secretsmanager").get_secret_value(SecretId="sample-api/dev/at-rest-db")
    assert now["DB_PASSWORD"]["version"] == current["VersionId"]
    assert current["VersionId"] in _variables(deployed, rotated)["STAGEFLOW_SECRET_DB_PASSWORD"]

    cli("drift", "drift", "dev", ok=(0, 1))
    cli("plan", "plan", "dev")
    assert not list(project.rglob("*.tfplan")) and not list(deployed.state.rglob("*.tfplan"))

    # a rollback restores the previous version, and with it the previous reference
    cli("rollback", "rollback", "dev")
    back = _invoke_secrets(deployed, deployed.outputs["alias_name"])
    assert back["DB_PASSWORD"]["version"] == old_version

    texts: dict[str, str | bytes] = dict(outputs)
    texts.update(_every_state_version(aws))
    texts.update(_every_function_version(deployed))
    texts["history"] = _history_items(deployed)
    assert len([k for k in texts if k.startswith("s3://")]) >= 2  # the state was written more than once
    hits = scan_for_values([project, deployed.state], texts, VALUES)
    assert not hits, [str(h) for h in hits]
    # the legacy value: never printed (registered with the redactor), gone from every new version
    printed: dict[str, str | bytes] = dict(outputs)
    for where, cfg in _every_function_version(deployed).items():
        version = where.rsplit(":", 1)[1]
        if version == "$LATEST" or int(version) > before:
            printed[where] = cfg
    legacy_hits = scan_for_values([], printed, [LEGACY])
    assert not legacy_hits, [str(h) for h in legacy_hits]
