"""Pinned references and rotation (issue 24 items 1-2) on moto in-process: what the function's
environment carries, new versions, the CLI's refusals (exit 2, nothing written), plan files 0600."""

from __future__ import annotations

import io
import json
import stat

import boto3
import pytest
from moto import mock_aws

from stageflow.errors import ExitCode, UsageError
from stageflow.redact import Redactor
from stageflow.secrets import rotate
from stageflow.secrets.refs import SecretRef, parse_ref
from stageflow.secrets.stores import resolve_pinned

TABLE = {
    "DB_PASSWORD": "secretsmanager:svc/dev/db#password",
    "API_TOKEN": "secretsmanager:svc/dev/token",
    "API_HOST": "ssm:/svc/dev/api/host",
}


@pytest.fixture
def aws(monkeypatch):
    for k in ("AWS_ENDPOINT_URL", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(k, raising=False)
    with mock_aws():
        kw = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        sm, ssm = boto3.client("secretsmanager", **kw), boto3.client("ssm", **kw)
        sm.create_secret(
            Name="svc/dev/db", SecretString=json.dumps({"user": "app", "password": "pw-one-1234"})
        )
        sm.create_secret(Name="svc/dev/token", SecretString="tok-one-5678")
        ssm.put_parameter(Name="/svc/dev/api/host", Value="host-one.internal", Type="SecureString")
        yield sm, ssm


def test_pinned_references_name_the_exact_versions_and_never_the_values(aws):
    sm, ssm = aws
    values, pins = resolve_pinned("dev", TABLE, secretsmanager=sm, ssm=ssm)
    db = sm.get_secret_value(SecretId="svc/dev/db")
    assert pins["DB_PASSWORD"] == f"secretsmanager:{db['ARN']}?versionId={db['VersionId']}#password"
    tok = sm.get_secret_value(SecretId="svc/dev/token")
    assert pins["API_TOKEN"] == f"secretsmanager:{tok['ARN']}?versionId={tok['VersionId']}"
    assert pins["API_HOST"] == "ssm:/svc/dev/api/host:1"
    assert values["DB_PASSWORD"].reveal() == "pw-one-1234"
    assert not any(v.reveal() in "".join(pins.values()) for v in values.values())


def test_rotation_stores_a_new_version_keeping_other_keys_and_the_pin_follows(aws):
    sm, ssm = aws
    _, before = resolve_pinned("dev", TABLE, secretsmanager=sm, ssm=ssm)
    red = Redactor()
    value = rotate.new_value(io.StringIO("pw-two-abcdef\n"), redactor=red)
    assert value.reveal() == "pw-two-abcdef" and red.redact("x pw-two-abcdef") == "x ***"
    done = rotate.store(
        parse_ref("DB_PASSWORD", TABLE["DB_PASSWORD"]), value, secretsmanager=sm, redactor=red
    )
    doc = json.loads(sm.get_secret_value(SecretId="svc/dev/db")["SecretString"])
    assert doc == {"user": "app", "password": "pw-two-abcdef"}
    _, after = resolve_pinned("dev", TABLE, secretsmanager=sm, ssm=ssm)
    assert after["DB_PASSWORD"] != before["DB_PASSWORD"] and done.version in after["DB_PASSWORD"]
    assert after["API_TOKEN"] == before["API_TOKEN"]
    # the previous version is still readable by its pin: a rollback's reference keeps working
    old_id = before["DB_PASSWORD"].split("?versionId=")[1].split("#")[0]
    assert "pw-one-1234" in sm.get_secret_value(SecretId="svc/dev/db", VersionId=old_id)["SecretString"]
    gen = rotate.new_value(None, length=32, redactor=red)
    ssm_done = rotate.store(SecretRef("API_HOST", "ssm", "/svc/dev/api/host"), gen, ssm=ssm, redactor=red)
    assert ssm_done.version == "2" and len(gen.reveal()) == 32
    p = ssm.get_parameter(Name="/svc/dev/api/host:1", WithDecryption=True)["Parameter"]
    assert p["Value"] == "host-one.internal" and p["Type"] == "SecureString"


@pytest.mark.parametrize("text", ["", "abc\n", "two\nlines\n", "x" * (64 * 1024 + 1)])
def test_a_bad_new_value_is_refused(text):
    with pytest.raises(UsageError):
        rotate.new_value(io.StringIO(text), redactor=Redactor())


@pytest.mark.parametrize("length", [0, 15, 4097])
def test_length_out_of_range_is_refused(length):
    with pytest.raises(UsageError, match="--length"):
        rotate.check_length(length)


def _cli(tmp_path, capsys, *args, stdin=""):
    import sys

    from stageflow.cli import main

    cfg = tmp_path / "stageflow.toml"
    cfg.write_text('[service]\nname = "svc"\n[environments.dev.secrets]\nDB_PASSWORD = "ssm:/svc/dev/db"\n')
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        rc = main(["--no-local", "--config", str(cfg), "secrets", "dev", *args])
    finally:
        sys.stdin = old
    return rc, capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["rotate", "NOPE"], "no secret 'NOPE'"),
        (["rotate"], "exactly one NAME"),
        (["rotate", "DB_PASSWORD", "--length", "3"], "--length"),
        (["validate", "--stdin"], "for rotate only"),
    ],
)
def test_rotate_refusals_are_exit_2_before_any_aws_call(tmp_path, capsys, monkeypatch, args, says):
    from stageflow.factory import Factory

    def no_aws(self):
        raise AssertionError("no AWS call expected")

    monkeypatch.setattr(Factory, "aws", property(no_aws))
    rc, cap = _cli(tmp_path, capsys, *args, stdin="a-new-value\n")
    assert rc == ExitCode.USAGE, cap.err
    assert says in cap.err and "a-new-value" not in cap.err + cap.out


def test_plan_files_are_created_0600(tmp_path, monkeypatch):
    """Finding 2: a plan file was left 0644 (the umask's); now created 0600 before Terraform writes it."""
    import os

    from stageflow.terraform.api import _new_plan_file

    old = os.umask(0o022)
    try:
        path = _new_plan_file(tmp_path, "plan")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
