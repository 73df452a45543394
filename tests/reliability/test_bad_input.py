"""Bad input, one row per case, for every command: one line on stderr, the documented exit code, and
no change to any AWS resource (the emulator's state is read before and after each row).

The emulator holds an environment made directly through the API (function with versions 1 and 2, the
alias on v1, history table, topic, a secret, a parameter) and remembered as dev's outputs, as local
Terraform would leave it: no row needs Terraform to build anything, and every input is one that must
fail before anything is built or changed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.request
import zipfile

import pytest

from stageflow.errors import ExitCode
from tests.conftest import REPO, run_cli
from tests.reliability.conftest import history_table

pytestmark = [pytest.mark.emulator, pytest.mark.reliability, pytest.mark.e2e]

SERVICE = "sample-api"
FUNCTION = "sample-api-dev-badinput"
TABLE = "sample-api-dev-badinput-history"
GOOD_SCENARIO = REPO / "tests" / "fixtures" / "scenarios" / "healthy-identical.json"

USAGE, ENVIRONMENT = int(ExitCode.USAGE), int(ExitCode.ENVIRONMENT)
LAST: dict = {}  # the emulator's state after the last row (set up fresh by `seeded`)


# -- the emulator's state --------------------------------------------------------------------------------
def snapshot(clients) -> dict:
    """Everything a command could change, as plain data (no timestamps that reads move)."""
    lam, ddb, sns = clients.client("lambda"), clients.client("dynamodb"), clients.client("sns")
    cw, ssm, sm, s3 = (clients.client(n) for n in ("cloudwatch", "ssm", "secretsmanager", "s3"))
    snap: dict = {"functions": {}, "tables": {}, "buckets": {}}
    for f in lam.list_functions()["Functions"]:
        name = f["FunctionName"]
        snap["functions"][name] = {
            "versions": sorted(
                (v["Version"], v["CodeSha256"], json.dumps(v.get("Environment", {}), sort_keys=True))
                for v in lam.list_versions_by_function(FunctionName=name)["Versions"]
            ),
            "aliases": sorted(
                (a["Name"], a["FunctionVersion"], json.dumps(a.get("RoutingConfig", {}), sort_keys=True))
                for a in lam.list_aliases(FunctionName=name)["Aliases"]
            ),
        }
    for t in ddb.list_tables()["TableNames"]:
        items = ddb.scan(TableName=t, ConsistentRead=True)["Items"]
        snap["tables"][t] = sorted(json.dumps(i, sort_keys=True) for i in items)
    snap["topics"] = sorted(t["TopicArn"] for t in sns.list_topics()["Topics"])
    snap["subscriptions"] = sorted(s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"])
    snap["alarms"] = sorted((a["AlarmName"], a["StateValue"]) for a in cw.describe_alarms()["MetricAlarms"])
    snap["metrics"] = sorted(json.dumps(m, sort_keys=True) for m in cw.list_metrics().get("Metrics", []))
    snap["parameters"] = sorted((p["Name"], p["Version"]) for p in ssm.describe_parameters()["Parameters"])
    snap["secrets"] = sorted(
        (
            s["Name"],
            json.dumps(s.get("SecretVersionsToStages", {}), sort_keys=True),
            str(s.get("DeletedDate")),
        )
        for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    )
    for b in s3.list_buckets()["Buckets"]:
        objs = s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])
        snap["buckets"][b["Name"]] = sorted((o["Key"], o["ETag"]) for o in objs)
    return snap


def _zip(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("service/handler.py", text)
    return buf.getvalue()


@pytest.fixture(scope="module")
def seeded(emulator, emulator_state):
    """A reset emulator holding dev's resources (made through the API) and its remembered outputs."""
    from stageflow.aws import AwsClients, AwsTarget
    from stageflow.local.emulator import Emulator

    req = urllib.request.Request(f"{emulator.endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=30).read()
    clients = AwsClients(AwsTarget("us-east-1", True, emulator.endpoint))
    iam, lam = clients.client("iam"), clients.client("lambda")
    role = iam.create_role(
        RoleName="badinput",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )["Role"]["Arn"]
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.11",
        Role=role,
        Handler="service.handler.handler",
        Code={"ZipFile": _zip("def handler(e, c):\n    return 1\n")},
    )
    v1 = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.update_function_code(FunctionName=FUNCTION, ZipFile=_zip("def handler(e, c):\n    return 2\n"))
    lam.publish_version(FunctionName=FUNCTION)
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=v1)
    topic = clients.client("sns").create_topic(Name="sample-api-dev-badinput")["TopicArn"]
    history_table(clients.client("dynamodb"), TABLE)
    sm = clients.client("secretsmanager")
    sm.create_secret(Name="sample-api/dev/db", SecretString='{"password": "bad-input-row-value"}')
    sm.create_secret(Name="sample-api/dev/gone", SecretString="x")
    sm.delete_secret(SecretId="sample-api/dev/gone", RecoveryWindowInDays=7)  # exists, cannot be read
    clients.client("ssm").put_parameter(Name="/sample-api/dev/flag", Value="on", Type="String")
    clients.client("s3").create_bucket(Bucket="badinput-bucket")
    status = Emulator(emulator_state).status()
    outputs = emulator_state / "outputs" / "local-dev.json"  # what OutputsStore.remember writes
    outputs.parent.mkdir(parents=True, exist_ok=True)
    outputs.write_text(
        json.dumps(
            {
                "endpoint": status.endpoint,
                "outputs": {
                    "function_name": FUNCTION,
                    "alias_name": "live",
                    "alarm_names": [],
                    "topic_arn": topic,
                    "history_table": TABLE,
                    "source": "terraform",
                },
            }
        )
    )
    LAST.clear()
    yield clients
    LAST.clear()
    outputs.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory, emulator_state):
    """One project for the module (config, app), the files rows refer to, and the child's environment."""
    root = tmp_path_factory.mktemp("bad-input")
    proj = root / "project"
    proj.mkdir()
    shutil.copy(REPO / "stageflow.toml", proj / "stageflow.toml")
    for sub in ("app", "infrastructure"):
        shutil.copytree(REPO / sub, proj / sub, ignore=shutil.ignore_patterns("__pycache__", ".terraform"))
    files = root / "files"
    files.mkdir()
    good = (REPO / "stageflow.toml").read_text()
    (files / "not-toml.toml").write_text("[service\nname = 'x'\n")
    steps = "steps = [{ weight = 10, bake_minutes = 5 }"
    assert steps in good
    (files / "weights.toml").write_text(good.replace(steps, "steps = [{ weight = 150, bake_minutes = 5 }", 1))
    (files / "unknown-key.toml").write_text(good + "\n[environments.dev.nonsense]\nx = 1\n")
    (files / "missing-secret.toml").write_text(
        _with_secret(good, "DB_PASSWORD", "secretsmanager:sample-api/dev/nope#password")
    )
    (files / "unreadable-secret.toml").write_text(
        _with_secret(good, "GONE", "secretsmanager:sample-api/dev/gone")
    )
    (files / "bad-secret-ref.toml").write_text(_with_secret(good, "TOKEN", "vault:sample-api/dev/token"))
    (files / "bad-scenario.json").write_text('{"name": "broken", "stable": ')
    (files / "wrong-scenario.json").write_text('{"name": "no traffic", "traffic_per_minute": -5}')
    (files / "not-an-event.json").write_text("this is not json")
    (files / "not-an-alarm.json").write_text('{"Records": [{"Sns": {"Message": "{\\"hello\\": 1}"}}]}')
    (files / "a-directory").mkdir()
    env = {
        "STAGEFLOW_LOCAL": "1",
        "STAGEFLOW_STATE_DIR": str(emulator_state),
        "NO_COLOR": "1",
    }
    return proj, files, env


def _with_secret(toml: str, name: str, ref: str) -> str:
    if "[environments.dev.secrets]" in toml:
        return toml.replace("[environments.dev.secrets]", f'[environments.dev.secrets]\n{name} = "{ref}"')
    return toml + f'\n[environments.dev.secrets]\n{name} = "{ref}"\n'


# -- the table -----------------------------------------------------------------------------------------
# (id, argv with {files}/{scenario} placeholders, extra environment, expected exit code)
ENV_COMMANDS = [
    ["canary", "nope"],
    ["approve", "nope"],
    ["reject", "nope"],
    ["resume", "nope"],
    ["rollback", "nope"],
    ["status", "nope"],
    ["history", "nope"],
    ["unlock", "nope", "--reason", "x"],
    ["deploy", "nope"],
    ["smoke", "nope"],
    ["load", "nope"],
    ["plan", "nope"],
    ["apply", "nope"],
    ["drift", "nope"],
    ["build", "nope"],
    ["secrets", "nope", "validate"],
    ["rehearse", "--env", "nope", "--scenario", "{scenario}"],
    ["demo", "--env", "nope"],
    ["chaos", "nope"],
    ["freeze", "nope", "--until", "1h", "--reason", "x"],
    ["unfreeze", "nope"],
    ["incidents", "nope"],
    ["tick", "nope"],
]
ROWS = [(f"unknown-env-{argv[0]}", argv, {}, USAGE) for argv in ENV_COMMANDS]
CONFIG_COMMANDS = [
    ["config"],
    ["canary", "dev"],
    ["status", "dev"],
    ["rollback", "dev"],
    ["deploy", "dev"],
    ["plan", "dev"],
    ["secrets", "dev", "validate"],
    ["history", "dev"],
    ["rehearse", "--scenario", "{scenario}"],
]
ROWS += [
    (f"malformed-toml-{argv[0]}", ["--config", "{files}/not-toml.toml", *argv], {}, USAGE)
    for argv in CONFIG_COMMANDS
]
ROWS += [
    (f"unknown-key-{argv[0]}", ["--config", "{files}/unknown-key.toml", *argv], {}, USAGE)
    for argv in CONFIG_COMMANDS[:3]
]
ROWS += [
    (f"weights-out-of-range-{argv[0]}", ["--config", "{files}/weights.toml", *argv], {}, USAGE)
    for argv in (
        ["config"],
        ["canary", "dev"],
        ["deploy", "dev"],
        ["rehearse", "--env", "dev", "--scenario", "{scenario}"],
    )
]
ROWS += [
    ("malformed-scenario-canary", ["canary", "dev", "--scenario", "{files}/bad-scenario.json"], {}, USAGE),
    ("malformed-scenario-resume", ["resume", "dev", "--scenario", "{files}/bad-scenario.json"], {}, USAGE),
    ("malformed-scenario-rehearse", ["rehearse", "--scenario", "{files}/bad-scenario.json"], {}, USAGE),
    ("invalid-scenario-rehearse", ["rehearse", "--scenario", "{files}/wrong-scenario.json"], {}, USAGE),
    ("malformed-scenario-deploy", ["deploy", "dev", "--scenario", "{files}/bad-scenario.json"], {}, USAGE),
    ("malformed-scenario-demo", ["demo", "--scenario", "{files}/bad-scenario.json"], {}, USAGE),
    ("missing-scenario-canary", ["canary", "dev", "--scenario", "{files}/nope.json"], {}, USAGE),
    ("alarm-event-not-json", ["rollback", "--from-alarm-event", "{files}/not-an-event.json"], {}, USAGE),
    (
        "alarm-event-not-an-alarm",
        ["rollback", "dev", "--from-alarm-event", "{files}/not-an-alarm.json"],
        {},
        USAGE,
    ),
    ("rollback-to-unknown-version", ["rollback", "dev", "--to", "999"], {}, USAGE),
    ("rollback-to-not-a-version", ["rollback", "dev", "--to", "latest"], {}, USAGE),
    ("approve-nothing-in-flight", ["approve", "dev"], {}, USAGE),
    ("reject-nothing-in-flight", ["reject", "dev"], {}, USAGE),
    ("resume-nothing-in-flight", ["resume", "dev"], {}, USAGE),
    ("unlock-without-reason", ["unlock", "dev", "--reason", " "], {}, USAGE),
    ("history-limit-out-of-range", ["history", "dev", "--limit", "0"], {}, USAGE),
    ("dora-unknown-environment", ["dora", "qa"], {}, USAGE),
    ("unit-floor-out-of-range", ["unit", "--floor", "101"], {}, USAGE),
    ("integration-unknown-environment", ["integration", "qa"], {}, USAGE),
    ("lint-service-malformed-toml", ["--config", "{files}/not-toml.toml", "lint-service"], {}, USAGE),
    ("dora-days-out-of-range", ["dora", "dev", "--days", "0"], {}, USAGE),
    ("report-unknown-environment", ["report", "--env", "qa"], {}, USAGE),
    ("report-unknown-deployment", ["report", "20200101T000000Z-000000", "--env", "dev"], {}, USAGE),
    ("load-users-out-of-range", ["load", "dev", "--users", "0"], {}, USAGE),
    ("smoke-bad-url", ["smoke", "dev", "--url", "ftp://127.0.0.1:1/"], {}, USAGE),
    ("missing-terraform-plan", ["plan", "dev"], {"TERRAFORM_BIN": "/nonexistent/terraform"}, ENVIRONMENT),
    ("missing-terraform-apply", ["apply", "dev"], {"TERRAFORM_BIN": "/nonexistent/terraform"}, ENVIRONMENT),
    ("missing-terraform-drift", ["drift", "dev"], {"TERRAFORM_BIN": "/nonexistent/terraform"}, ENVIRONMENT),
    (
        "no-docker-engine-build",
        ["build", "dev", "--no-push"],
        {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        ENVIRONMENT,
    ),
    (
        "missing-secret-check",
        ["--config", "{files}/missing-secret.toml", "secrets", "dev", "validate"],
        {},
        USAGE,
    ),
    (
        "secret-marked-for-deletion-check",
        ["--config", "{files}/unreadable-secret.toml", "secrets", "dev", "validate"],
        {},
        USAGE,
    ),
    (
        "malformed-secret-reference-check",
        ["--config", "{files}/bad-secret-ref.toml", "secrets", "dev", "validate"],
        {},
        USAGE,
    ),
    ("secrets-env-file-directory", ["secrets", "dev", "env-file", "{files}/a-directory"], {}, USAGE),
    ("secrets-unknown-action", ["secrets", "dev", "explode"], {}, USAGE),
    ("security-unknown-scanner", ["security", "--only", "nosuch"], {}, USAGE),
    ("local-up-bad-port", ["local", "up", "--port", "http"], {}, USAGE),
    ("local-down-unknown-option", ["local", "down", "--force"], {}, USAGE),
    ("local-status-unknown-option", ["local", "status", "--all"], {}, USAGE),
    ("local-reset-unknown-option", ["local", "reset", "--hard"], {}, USAGE),
    ("chaos-unknown-experiment", ["chaos", "dev", "--experiment", "nosuch"], {}, USAGE),
    ("freeze-until-not-a-time", ["freeze", "dev", "--until", "nan", "--reason", "x"], {}, USAGE),
    (
        "freeze-until-in-the-past",
        ["freeze", "dev", "--until", "2020-01-01T00:00Z", "--reason", "x"],
        {},
        USAGE,
    ),
    ("unfreeze-unknown-option", ["unfreeze", "dev", "--until", "1h"], {}, USAGE),
    ("incidents-unknown-postmortem", ["incidents", "dev", "--postmortem", "nope"], {}, USAGE),
    ("package-bad-image-digest", ["package", "--out", "{files}/out", "--image-digest", "latest"], {}, USAGE),
    ("approve-as-blank", ["approve", "dev", "--as", " "], {}, USAGE),
    ("approve-extend-not-finite", ["approve", "dev", "--extend", "nan"], {}, USAGE),
    ("unknown-command", ["launch", "dev"], {}, USAGE),
]


@pytest.mark.parametrize(("argv", "extra", "code"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(seeded, base, argv, extra, code):
    proj, files, env = base
    args = [a.replace("{files}", str(files)).replace("{scenario}", str(GOOD_SCENARIO)) for a in argv]
    before = LAST.pop("snapshot", None) or snapshot(seeded)  # the previous row's "after"
    r = run_cli(*args, cwd=proj, env={**env, **extra}, timeout=120)
    after = LAST["snapshot"] = snapshot(seeded)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("stageflow: error: ")]
    assert r.returncode == code, f"exit {r.returncode}, want {code}: {r.stderr[-800:]}"
    assert len(errors) == 1 and errors[-1] == lines[-1], r.stderr[-800:]
    assert "Traceback" not in r.stderr
    assert "bad-input-row-value" not in r.stdout + r.stderr
    assert before == after, "the emulator's state changed"
    assert not (proj / ".stageflow").exists() or os.listdir(proj / ".stageflow") == []


def _command(argv: list[str]) -> str:
    return argv[2] if argv[0] == "--config" else argv[0]


def test_the_table_covers_every_command():
    from stageflow.cli import cli

    covered = {_command(r[1]) for r in ROWS}
    assert set(cli.commands) <= covered, set(cli.commands) - covered
    assert {"up", "down", "status", "reset"} <= {r[1][1] for r in ROWS if r[1][0] == "local"}
