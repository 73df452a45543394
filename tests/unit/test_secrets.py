"""stageflow.secrets without the emulator: parsing (refs), reading and error grouping (stores: botocore
Stubber at the client seam, which validates against the real service models), env files, exec, the
Lambda merge (sinks)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import boto3
import pytest
from botocore.stub import ANY, Stubber

from stageflow.errors import AwsError, EnvironmentFailure, ExitCode, UsageError
from stageflow.redact import Redactor, Secret
from stageflow.secrets.refs import MalformedSecretReference, SecretRef, check_version_stage, parse_ref
from stageflow.secrets.sinks import (
    child_env,
    exec_child,
    exec_env,
    format_env_line,
    register_deployed_values,
    sensitive_var_names,
    tf_vars,
    update_lambda_env,
    write_env_file,
)
from stageflow.secrets.stores import Problem, SecretsNotFound, SecretsUnavailable, fetch, raise_for_problems
from tests.conftest import require


def _client(service):
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


# -- references --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "secretsmanager:svc/prod/database#password",
            SecretRef("X", "secretsmanager", "svc/prod/database", "password"),
        ),
        ("secretsmanager:svc/prod/api-token", SecretRef("X", "secretsmanager", "svc/prod/api-token")),
        (
            "secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:svc/db-AbCdEf#user",
            SecretRef(
                "X",
                "secretsmanager",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:svc/db-AbCdEf",
                "user",
            ),
        ),
        ("ssm:/svc/prod/api/host", SecretRef("X", "ssm", "/svc/prod/api/host")),
    ],
)
def test_parse_ref(text, expected):
    ref = parse_ref("X", text)
    assert ref == expected
    assert ref.text == text


@pytest.mark.parametrize(
    "text",
    [
        "vault:svc/x",
        "secretsmanager:",
        "secretsmanager:has space",
        "secretsmanager:svc/x#",
        "secretsmanager:svc/x#a b",
        "ssm:relative/path",
        "ssm:/",
        "ssm:/a//b",
        "ssm:/svc/x#key",
        "svc/x",
    ],
)
def test_malformed_reference_is_a_usage_error(text):
    with pytest.raises(MalformedSecretReference) as err:
        parse_ref("X", text)
    assert err.value.exit_code == ExitCode.USAGE
    assert "\n" not in err.value.one_line()


def test_bad_name_and_version_stage():
    with pytest.raises(MalformedSecretReference):
        parse_ref("1BAD", "ssm:/a")
    with pytest.raises(UsageError):
        check_version_stage("has space")
    assert check_version_stage("AWSPENDING") == "AWSPENDING"


# -- fetching through the client seam ----------------------------------------------------------------
def test_fetch_groups_missing_and_denied_and_registers_values_first():
    sm, ssm = _client("secretsmanager"), _client("ssm")
    refs = [
        parse_ref("DB_PASSWORD", "secretsmanager:svc/dev/db#password"),
        parse_ref("DB_USER", "secretsmanager:svc/dev/db#username"),
        parse_ref("NOKEY", "secretsmanager:svc/dev/db#absent"),
        parse_ref("DENIED", "secretsmanager:svc/dev/locked"),
        parse_ref("GONE", "secretsmanager:svc/dev/gone"),
        parse_ref("HOST", "ssm:/svc/dev/host"),
        parse_ref("NOPARAM", "ssm:/svc/dev/absent"),
    ]
    doc = json.dumps({"username": "app-user", "password": "pw-0123456789"})
    with Stubber(sm) as s1, Stubber(ssm) as s2:
        s1.add_response(
            "get_secret_value",
            {"SecretString": doc, "Name": "svc/dev/db"},
            {"SecretId": "svc/dev/db", "VersionStage": "AWSCURRENT"},
        )  # fetched once for three keys
        s1.add_client_error(
            "get_secret_value",
            service_error_code="AccessDeniedException",
            service_message="User is not authorized",
            http_status_code=400,
            expected_params={"SecretId": "svc/dev/locked", "VersionStage": "AWSCURRENT"},
        )
        s1.add_client_error(
            "get_secret_value",
            service_error_code="ResourceNotFoundException",
            http_status_code=400,
            expected_params={"SecretId": "svc/dev/gone", "VersionStage": "AWSCURRENT"},
        )
        s2.add_response(
            "get_parameters",
            {
                "Parameters": [
                    {"Name": "/svc/dev/host", "Value": "db.internal.example", "Type": "SecureString"}
                ],
                "InvalidParameters": ["/svc/dev/absent"],
            },
            {"Names": ["/svc/dev/absent", "/svc/dev/host"], "WithDecryption": True},
        )
        red = Redactor()
        found, problems = fetch(refs, secretsmanager=sm, ssm=ssm, redactor=red)
    assert {k: v.reveal() for k, v in found.items()} == {
        "DB_PASSWORD": "pw-0123456789",
        "DB_USER": "app-user",
        "HOST": "db.internal.example",
    }
    assert [(p.ref.name, p.kind) for p in problems] == [
        ("NOKEY", "missing"),
        ("DENIED", "denied"),
        ("GONE", "missing"),
        ("NOPARAM", "missing"),
    ]
    # every value fetched is masked, and the whole JSON document too
    text = red.redact(f"{doc} pw-0123456789 app-user db.internal.example")
    assert "pw-0123" not in text and "app-user" not in text and "internal" not in text
    with pytest.raises(SecretsUnavailable) as err:
        raise_for_problems("dev", len(refs), problems)
    line = err.value.one_line()
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert "4 of 7 secrets failed" in line and all(n in line for n in ("NOKEY", "DENIED", "GONE", "NOPARAM"))
    assert "pw-0123" not in line


def test_only_missing_is_exit_2():
    ref = parse_ref("A", "ssm:/a/b")
    with pytest.raises(SecretsNotFound) as err:
        raise_for_problems("dev", 1, [Problem(ref, "missing", "not found")])
    assert err.value.exit_code == ExitCode.USAGE


def test_short_value_refused_and_ssm_batch_denied_is_pinpointed():
    ssm = _client("ssm")
    refs = [parse_ref("SHORT", "ssm:/a/short"), parse_ref("LOCKED", "ssm:/a/locked")]
    with Stubber(ssm) as s:
        s.add_client_error("get_parameters", service_error_code="AccessDeniedException", http_status_code=400)
        s.add_client_error(
            "get_parameter",
            service_error_code="AccessDeniedException",
            http_status_code=400,
            expected_params={"Name": "/a/locked", "WithDecryption": True},
        )
        s.add_response(
            "get_parameter",
            {"Parameter": {"Name": "/a/short", "Value": "ab"}},
            {"Name": "/a/short", "WithDecryption": True},
        )
        found, problems = fetch(refs, ssm=ssm, redactor=Redactor())
    assert found == {}
    assert [(p.ref.name, p.kind) for p in problems] == [("SHORT", "invalid"), ("LOCKED", "denied")]


def test_rejected_credentials_end_the_run():
    sm = _client("secretsmanager")
    with Stubber(sm) as s:
        s.add_client_error("get_secret_value", service_error_code="UnrecognizedClientException")
        with pytest.raises(AwsError) as err:
            fetch([parse_ref("A", "secretsmanager:a")], secretsmanager=sm, redactor=Redactor())
    # through the one AWS error mapping: exit 3, the credentials named as the cause
    assert err.value.exit_code == ExitCode.ENVIRONMENT and err.value.code == "UnrecognizedClientException"
    assert "credentials are invalid or expired" in err.value.one_line()


def test_not_json_secret_with_key():
    sm = _client("secretsmanager")
    with Stubber(sm) as s:
        s.add_response("get_secret_value", {"SecretString": "plain-text-value"})
        found, problems = fetch(
            [parse_ref("A", "secretsmanager:a#k")], secretsmanager=sm, redactor=Redactor()
        )
    assert not found and problems[0].kind == "invalid" and "not JSON" in problems[0].detail


# -- the CLI with AccessDenied at the client seam: one line, exit 3, nothing written -----------------
def test_cli_access_denied_one_line_exit_3_writes_nothing(tmp_path, monkeypatch, capsys):
    from stageflow.cli import main
    from stageflow.factory import Factory

    cfg = tmp_path / "stageflow.toml"
    cfg.write_text(
        '[service]\nname = "svc"\n[environments.dev.secrets]\n'
        'DB_PASSWORD = "secretsmanager:svc/dev/db#password"\n'
    )
    sm = _client("secretsmanager")
    stub = Stubber(sm)
    stub.add_client_error(
        "get_secret_value",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform secretsmanager:GetSecretValue",
        http_status_code=400,
    )
    stub.activate()

    class Clients:
        def client(self, name):
            assert name == "secretsmanager"
            return sm

    monkeypatch.setattr(Factory, "aws", property(lambda self: Clients()))
    before = sorted(tmp_path.iterdir())
    rc = main(["--no-local", "--config", str(cfg), "secrets", "dev", "env-file", str(tmp_path / ".env")])
    cap = capsys.readouterr()
    assert rc == ExitCode.ENVIRONMENT
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stageflow: error: ")
    assert "DB_PASSWORD" in lines[0] and "access denied" in lines[0]
    assert cap.out == ""
    assert sorted(tmp_path.iterdir()) == before
    stub.assert_no_pending_responses()


# -- handing values on ---------------------------------------------------------------------------------
def test_child_env_and_tf_vars():
    secrets = {"DB_PASSWORD": Secret("pw-123456"), "API_HOST": Secret("h.example")}
    assert child_env(secrets) == {"DB_PASSWORD": "pw-123456", "API_HOST": "h.example"}
    assert tf_vars(secrets) == {"TF_VAR_db_password": "pw-123456", "TF_VAR_api_host": "h.example"}
    assert sensitive_var_names(secrets) == {"db_password", "api_host"}


def test_exec_env_pristine_has_only_secrets():
    secrets = {"A_SECRET": Secret("value-1234")}
    assert exec_env(secrets, pristine=True, base={"PATH": "/bin"}, extra={"AWS_X": "1"}) == {
        "A_SECRET": "value-1234"
    }
    env = exec_env(
        secrets, pristine=False, base={"PATH": "/bin", "A_SECRET": "old"}, extra={"AWS_X": "1"}, tf=True
    )
    assert env == {"PATH": "/bin", "A_SECRET": "value-1234", "AWS_X": "1", "TF_VAR_a_secret": "value-1234"}


@pytest.mark.parametrize(
    "value",
    [
        "plain-value_1.2:3@x",
        "has space",
        "it's quoted",
        'dq " and \\ and $HOME',
        "multi\nline\nvalue",
        "tab\there",
    ],
)
def test_env_line_round_trips_through_a_dotenv_reader(value):
    line = format_env_line("K", value)
    assert "\n" not in line
    name, raw = line.split("=", 1)
    if raw.startswith("'"):
        parsed = raw[1:-1]
    elif raw.startswith('"'):
        parsed = json.loads(raw.replace("\\$", "$"))
    else:
        parsed = raw
    assert (name, parsed) == ("K", value)


def test_write_env_file_mode_and_atomicity(tmp_path):
    target = tmp_path / "out.env"
    old_umask = os.umask(0)  # even a permissive umask gives 0600
    try:
        write_env_file(target, {"A_B": Secret("value-1234")})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "A_B=value-1234\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.env"]


def test_write_env_file_refusals(tmp_path):
    wide = tmp_path / "wide.env"
    wide.write_text("X=1\n")
    wide.chmod(0o640)
    with pytest.raises(UsageError, match="0640"):
        write_env_file(wide, {"A": Secret("value-1234")})
    assert wide.read_text() == "X=1\n"
    link = tmp_path / "link.env"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="symbolic link"):
        write_env_file(link, {"A": Secret("value-1234")})
    with pytest.raises(UsageError, match="does not exist"):
        write_env_file(tmp_path / "no-dir" / "x.env", {"A": Secret("value-1234")})
    with pytest.raises(UsageError, match="not a regular file"):
        write_env_file(tmp_path, {"A": Secret("value-1234")})
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_write_env_file_refuses_git_tracked(tmp_path):
    require(shutil.which("git") is not None, "git")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    tracked = tmp_path / "sub" / "tracked.env"
    tracked.parent.mkdir()
    tracked.write_text("X=1\n")
    tracked.chmod(0o600)
    subprocess.run(["git", "-C", str(tmp_path), "add", "sub/tracked.env"], check=True)
    with pytest.raises(UsageError, match="tracked by git"):
        write_env_file(tracked, {"A": Secret("value-1234")})
    assert tracked.read_text() == "X=1\n"


# -- exec ----------------------------------------------------------------------------------------------
def test_exec_child_lines_and_exit_code():
    out, err = [], []
    code = "import sys; print('one'); print('two', file=sys.stderr); print('three'); sys.exit(5)"
    rc = exec_child([sys.executable, "-c", code], dict(os.environ), out=out.append, err=err.append)
    assert rc == 5
    assert out == ["one", "three"] and err == ["two"]


def test_exec_child_killed_by_a_signal_is_128_plus_n():
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    assert exec_child([sys.executable, "-c", code], dict(os.environ), out=print, err=print) == 128 + 15


def test_exec_child_without_path_in_env_finds_program():
    out = []
    rc = exec_child(["env"], {"ONLY": "this-one"}, out=out.append, err=out.append)
    assert rc == 0 and out == ["ONLY=this-one"]


def test_exec_child_unknown_command():
    with pytest.raises(UsageError, match="command not found"):
        exec_child(["no-such-program-xyz"], {}, out=print, err=print)


# -- Lambda: revision-guarded merge, retried on a concurrent change -----------------------------------
def test_update_lambda_env_retries_on_revision_conflict():
    lam = _client("lambda")
    fn = "svc-dev"
    done = {"Configuration": {"FunctionName": fn, "LastUpdateStatus": "Successful"}}
    with Stubber(lam) as s:
        s.add_response("get_function", done, {"FunctionName": fn})
        s.add_response(
            "get_function_configuration",
            {
                "FunctionName": fn,
                "RevisionId": "r1",
                "Environment": {"Variables": {"KEEP": "1", "A_SECRET": "old"}},
            },
            {"FunctionName": fn},
        )
        s.add_client_error(
            "update_function_configuration",
            service_error_code="PreconditionFailedException",
            http_status_code=412,
            expected_params={
                "FunctionName": fn,
                "RevisionId": "r1",
                "Environment": {"Variables": {"KEEP": "1", "A_SECRET": "value-1234"}},
            },
        )
        s.add_response("get_function", done, {"FunctionName": fn})
        s.add_response(
            "get_function_configuration",
            {"FunctionName": fn, "RevisionId": "r2", "Environment": {"Variables": {"KEEP": "1", "NEW": "2"}}},
            {"FunctionName": fn},
        )
        s.add_response(
            "update_function_configuration",
            {"FunctionName": fn},
            {
                "FunctionName": fn,
                "RevisionId": "r2",
                "Environment": {"Variables": {"KEEP": "1", "NEW": "2", "A_SECRET": "value-1234"}},
            },
        )
        s.add_response("get_function", done, {"FunctionName": ANY})
        result = update_lambda_env(lam, fn, {"A_SECRET": Secret("value-1234")})
        s.assert_no_pending_responses()
    assert result.set == ("A_SECRET",) and result.kept == ("KEEP", "NEW")


def test_update_lambda_env_gives_up_after_three_revision_conflicts():
    lam = _client("lambda")
    fn = "svc-dev"
    done = {"Configuration": {"FunctionName": fn, "LastUpdateStatus": "Successful"}}
    with Stubber(lam) as s:
        for revision in ("r1", "r2", "r3"):
            s.add_response("get_function", done, {"FunctionName": fn})
            s.add_response(
                "get_function_configuration",
                {"FunctionName": fn, "RevisionId": revision},
                {"FunctionName": fn},
            )
            s.add_client_error(
                "update_function_configuration",
                service_error_code="PreconditionFailedException",
                http_status_code=412,
            )
        with pytest.raises(EnvironmentFailure, match="kept changing") as err:
            update_lambda_env(lam, fn, {"A_SECRET": Secret("value-1234")})
        s.assert_no_pending_responses()
    assert err.value.exit_code == ExitCode.ENVIRONMENT


def test_update_lambda_env_missing_function_is_exit_2_and_denied_is_exit_3():
    lam = _client("lambda")
    with Stubber(lam) as s:
        s.add_client_error(
            "get_function", service_error_code="ResourceNotFoundException", http_status_code=404
        )
        with pytest.raises(UsageError, match="not found") as missing:
            update_lambda_env(lam, "gone", {"A_SECRET": Secret("value-1234")})
    assert missing.value.exit_code == ExitCode.USAGE
    done = {"Configuration": {"FunctionName": "fn", "LastUpdateStatus": "Successful"}}
    with Stubber(lam) as s:
        s.add_response("get_function", done)
        s.add_client_error(
            "get_function_configuration", service_error_code="AccessDeniedException", http_status_code=403
        )
        with pytest.raises(AwsError) as denied:
            update_lambda_env(lam, "fn", {"A_SECRET": Secret("value-1234")})
    assert denied.value.exit_code == ExitCode.ENVIRONMENT and "Lambda function fn" in denied.value.one_line()
    assert "value-1234" not in denied.value.one_line()


def test_register_deployed_values_masks_only_the_secret_names_and_tolerates_a_missing_function():
    lam = _client("lambda")
    variables = {"DB_PASSWORD": "deployed-pw-77", "LOG_LEVEL": "debug-level", "EMPTY": ""}
    with Stubber(lam) as s:
        s.add_response(
            "get_function_configuration",
            {"FunctionName": "fn", "Environment": {"Variables": variables}},
            {"FunctionName": "fn"},
        )
        s.add_client_error("get_function_configuration", service_error_code="ResourceNotFoundException")
        red = Redactor()
        register_deployed_values(lam, "fn", {"DB_PASSWORD", "EMPTY"}, red)
        register_deployed_values(lam, "gone", {"DB_PASSWORD"}, red)
    assert red.redact("deployed-pw-77 debug-level") == "*** debug-level"
