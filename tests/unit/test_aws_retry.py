"""One retry policy for AWS and the emulator; botocore errors as one-line AwsError (exit 3)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from stageflow.aws import AwsClients, AwsTarget, RetryPolicy, aws_error
from stageflow.errors import AwsError, ExitCode, UsageError


def _retry_config(client) -> tuple:
    cfg = client.meta.config
    return cfg.retries["mode"], cfg.retries["total_max_attempts"], cfg.connect_timeout, cfg.read_timeout


def test_local_and_aws_clients_get_the_same_retries_and_timeouts(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    local = AwsClients(AwsTarget("us-east-1", True, "http://127.0.0.1:1")).client("dynamodb")
    remote = AwsClients(AwsTarget("us-east-1", False)).client("dynamodb")
    assert _retry_config(local) == _retry_config(remote) == ("adaptive", 5, 5.0, 30.0)
    assert local.meta.endpoint_url == "http://127.0.0.1:1"
    assert remote.meta.endpoint_url.startswith("https://dynamodb.us-east-1.amazonaws.com")


def test_overrides_from_the_environment_and_the_old_max_attempts_field():
    pol = RetryPolicy.from_env(
        {
            "STAGEFLOW_AWS_MAX_ATTEMPTS": "3",
            "STAGEFLOW_AWS_CONNECT_TIMEOUT": "1.5",
            "STAGEFLOW_AWS_READ_TIMEOUT": "7",
        }
    )
    assert (pol.max_attempts, pol.connect_timeout, pol.read_timeout) == (3, 1.5, 7.0)
    assert AwsTarget("us-east-1", False, max_attempts=2).retry.max_attempts == 2


@pytest.mark.parametrize(
    "env",
    [
        {"STAGEFLOW_AWS_MAX_ATTEMPTS": "many"},
        {"STAGEFLOW_AWS_MAX_ATTEMPTS": "0"},
        {"STAGEFLOW_AWS_READ_TIMEOUT": "-1"},
    ],
)
def test_bad_overrides_are_usage_errors(env):
    with pytest.raises(UsageError):
        RetryPolicy.from_env(env)


def _client_error(code: str, status: int, retries: int = 4) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "Rate\nexceeded"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
        },
        "UpdateAlias",
    )


@pytest.mark.parametrize(
    ("exc", "text", "hint"),
    [
        (
            _client_error("ThrottlingException", 400),
            "AWS UpdateAlias failed: ThrottlingException: Rate exceeded (after 5 attempts)",
            "throttling",
        ),
        (_client_error("ServiceUnavailable", 503), "ServiceUnavailable", "AWS is failing"),
        (
            _client_error("AccessDeniedException", 403, 0),
            "AccessDeniedException: Rate exceeded",
            "permission",
        ),
        (_client_error("ExpiredTokenException", 400, 0), "ExpiredTokenException", "expired"),
        (
            ReadTimeoutError(endpoint_url="http://127.0.0.1:1/"),
            "AWS unreachable: ReadTimeoutError",
            "network",
        ),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"), "EndpointConnectionError", "network"),
        (NoCredentialsError(), "no AWS credentials", "--local"),
    ],
)
def test_botocore_errors_become_one_line_exit_3(exc, text, hint):
    err = aws_error(exc, None)
    assert isinstance(err, AwsError) and err.exit_code == ExitCode.ENVIRONMENT
    line = err.one_line()
    assert text in line and hint in line and "\n" not in line


def test_other_errors_are_not_mapped():
    assert aws_error(ValueError("bug")) is None
    assert aws_error(_client_error("X", 400), "reading metrics").message.startswith("reading metrics: AWS")


def test_the_cli_prints_an_escaped_botocore_error_as_one_line_exit_3(monkeypatch, capsys):
    from stageflow import cli

    def boom(*_a, **_k):
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:9/")

    monkeypatch.setattr(cli.cli, "main", boom)
    assert cli.main(["status", "dev"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stageflow: error: AWS unreachable: ReadTimeoutError")
