"""The runtime helper the service ships (src/stageflow/data/stageflow_secrets.py, vendored into app/):
reference parsing, Signature Version 4 as botocore signs, the extension path, the cache, errors."""

from __future__ import annotations

import datetime
import http.server
import importlib.util
import json
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "src" / "stageflow" / "data" / "stageflow_secrets.py"


@pytest.fixture
def helper(monkeypatch):
    spec = importlib.util.spec_from_file_location("stageflow_secrets_under_test", HELPER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for k in list(__import__("os").environ):
        if k.startswith(("STAGEFLOW_SECRET", "AWS_ENDPOINT_URL", "PARAMETERS_SECRETS")):
            monkeypatch.delenv(k)
    return mod


def test_the_sample_app_ships_stageflow_s_copy_unchanged():
    assert (ROOT / "app" / "stageflow_secrets.py").read_bytes() == HELPER.read_bytes()


def test_the_helper_imports_only_the_standard_library():
    import ast

    tree = ast.parse(HELPER.read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert mods <= {
        "__future__",
        "base64",
        "datetime",
        "hashlib",
        "hmac",
        "json",
        "os",
        "threading",
        "urllib",
    }


def test_references_parse(helper):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:svc/dev/db-AbCdEf"
    assert helper.parse(f"secretsmanager:{arn}?versionId=v-1#password") == (
        "secretsmanager",
        arn,
        "v-1",
        "password",
    )
    assert helper.parse(f"secretsmanager:{arn}?versionId=v-1") == ("secretsmanager", arn, "v-1", None)
    assert helper.parse("ssm:/svc/dev/api/host:7") == ("ssm", "/svc/dev/api/host", "7", None)
    for bad in ("ssm:/svc/dev/host", "secretsmanager:svc/dev/db", "plain value", "ssm:/x:latest"):
        with pytest.raises(helper.SecretError, match="malformed"):
            helper.parse(bad)


def test_signature_is_botocore_s(helper):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = ("testing", "testing-secret-key", "tok")
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.GetParameter"}
    for url in ("https://ssm.eu-west-1.amazonaws.com/", "http://127.0.0.1:4566/"):
        payload = json.dumps({"Name": "/svc/dev/x:3", "WithDecryption": True}).encode()
        req = AWSRequest(method="POST", url=url, data=payload, headers=dict(headers))
        SigV4Auth(Credentials(*creds), "ssm", "eu-west-1").add_auth(req)
        now = datetime.datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        ours = helper.sign(
            "POST",
            url,
            headers,
            payload,
            service="ssm",
            region="eu-west-1",
            credentials=creds,
            now=now.replace(tzinfo=datetime.UTC),
        )
        assert ours["Authorization"] == req.headers["Authorization"]
        assert ours["X-Amz-Security-Token"] == "tok"


class _Extension(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802
        _Extension.seen.append((self.path, self.headers.get("X-Aws-Parameters-Secrets-Token")))
        if "systemsparameterstore" in self.path:
            body = {"Parameter": {"Value": "param-value-1"}}
        else:
            body = {"SecretString": json.dumps({"password": "pw-from-extension"})}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_extension_is_used_when_present_and_values_are_cached(helper, monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Extension)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(server.server_port))
        monkeypatch.setenv("STAGEFLOW_SECRETS_EXTENSION", "1")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "session-tok")
        monkeypatch.setenv("STAGEFLOW_SECRET_DB_PASSWORD", "secretsmanager:svc/dev/db?versionId=v-9#password")
        monkeypatch.setenv("STAGEFLOW_SECRET_HOST", "ssm:/svc/dev/host:3")
        _Extension.seen = []
        assert helper.names() == ("DB_PASSWORD", "HOST")
        assert helper.get("DB_PASSWORD") == "pw-from-extension"
        assert helper.get("DB_PASSWORD") == "pw-from-extension"  # cached: one request
        assert helper.get("HOST") == "param-value-1"
        paths = [p for p, _ in _Extension.seen]
        assert paths == [
            "/secretsmanager/get?secretId=svc%2Fdev%2Fdb&versionId=v-9",
            "/systemsparameterstore/get?name=%2Fsvc%2Fdev%2Fhost%3A3&withDecryption=true",
        ]
        assert {t for _, t in _Extension.seen} == {"session-tok"}
    finally:
        server.shutdown()


def test_an_unconfigured_name_is_a_clear_error(helper):
    with pytest.raises(helper.SecretError, match="DB_PASSWORD: not configured"):
        helper.get("DB_PASSWORD")


def test_a_custom_endpoint_turns_the_extension_off(helper, monkeypatch):
    monkeypatch.delenv("STAGEFLOW_SECRETS_EXTENSION", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert helper._use_extension() is False
