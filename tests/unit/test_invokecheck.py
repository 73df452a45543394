"""The pre-traffic / smoke check: expectations compared key by key, the function's own error line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from stageflow.errors import ConfigError
from stageflow.invokecheck import FAILED, NOT_RUN, PASSED, Smoke, error_line, invoke, mismatches, not_run


def test_mismatches_nested_and_json_strings():
    answer = {"statusCode": 200, "body": '{"status": "ok", "n": 1}', "headers": {"a": "1"}}
    assert mismatches({"statusCode": 200}, answer) == []
    assert mismatches({"body": '{"status":"ok","n":1}'}, answer) == []  # JSON equal, spacing aside
    assert mismatches({"body": {"status": "ok"}}, answer) == []  # a table against a JSON string
    assert mismatches({"statusCode": 201}, answer) == ["statusCode = 200, expected 201"]
    assert mismatches({"headers": {"a": "2", "b": "x"}}, answer) == [
        "headers.a = '1', expected '2'",
        "headers.b missing",
    ]
    assert mismatches({"a": 1}, [1, 2]) == ["answer: expected an object, got list"]


def test_error_line_is_lambdas_own():
    message = "Unable to import module 'notes.handler': No module named 'aws_lambda_powertools'"
    payload = {"errorType": "Runtime.ImportModuleError", "errorMessage": message}
    assert error_line(payload) == f"Runtime.ImportModuleError: {message}"
    assert error_line(None) == "no answer"


class FakeLambda:
    def __init__(self, payload, function_error=None):
        self.payload, self.function_error, self.calls = payload, function_error, []

    def invoke(self, **kw):
        self.calls.append(kw)
        resp = {
            "Payload": io.BytesIO(json.dumps(self.payload).encode()),
            "ExecutedVersion": "7",
            "LogResult": "",
        }
        if self.function_error:
            resp["FunctionError"] = self.function_error
        return resp


def test_invoke_sends_the_event_file_and_judges(tmp_path: Path):
    (tmp_path / "events").mkdir()
    (tmp_path / "events/health.json").write_text('{"rawPath": "/health"}')
    smoke = Smoke("events/health.json", {"statusCode": 200})
    lam = FakeLambda({"statusCode": 200})
    res = invoke(lam, "svc-api-dev", "7", smoke, tmp_path)
    assert res.status == PASSED and res.ok and res.executed_version == "7"
    assert lam.calls[0]["Qualifier"] == "7" and json.loads(lam.calls[0]["Payload"]) == {"rawPath": "/health"}
    bad = invoke(FakeLambda({"statusCode": 500}), "svc-api-dev", "7", smoke, tmp_path)
    assert bad.status == FAILED and bad.line() == "svc-api-dev:7 failed: statusCode = 500, expected 200"


def test_no_smoke_passes_without_a_function_error(tmp_path: Path):
    assert invoke(FakeLambda({"anything": 1}), "f", "live", Smoke(), tmp_path).status == PASSED
    err = invoke(
        FakeLambda({"errorType": "ValueError", "errorMessage": "x"}, "Unhandled"), "f", "2", Smoke(), tmp_path
    )
    assert err.status == FAILED and err.reason == "ValueError: x"


def test_unreadable_event_is_a_config_error(tmp_path: Path):
    (tmp_path / "e.json").write_text("{not json")
    with pytest.raises(ConfigError):
        Smoke("e.json").event(tmp_path)


def test_not_run_is_not_a_failure():
    res = not_run("f", "3", "arm64 cannot run on this machine; its zip was checked statically")
    assert res.status == NOT_RUN and res.ok
