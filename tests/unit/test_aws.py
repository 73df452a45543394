import pytest

from stageflow.aws import AwsClients, AwsTarget, check_local_endpoint, detect_local_mode, local_env
from stageflow.errors import ExitCode, LocalGuardError


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:5000", "http://localhost:4566", "http://[::1]:9"])
def test_guard_accepts_loopback(endpoint):
    assert check_local_endpoint(endpoint) == endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        None,
        "",
        "https://s3.amazonaws.com",
        "http://203.0.113.5:5000",
        "http://example.com:5000",
        "http://127.0.0.1",
        "ftp://127.0.0.1:21",
        "http://169.254.169.254:80",
    ],
)
def test_guard_refuses_anything_else(endpoint):
    with pytest.raises(LocalGuardError) as exc:
        check_local_endpoint(endpoint)
    assert exc.value.exit_code == ExitCode.ENVIRONMENT


def test_local_target_refuses_remote_endpoint_at_construction():
    with pytest.raises(LocalGuardError):
        AwsTarget("us-east-1", True, "https://lambda.us-east-1.amazonaws.com")


def test_local_client_is_pinned_to_the_emulator_with_dummy_credentials():
    clients = AwsClients(AwsTarget("us-east-1", True, "http://127.0.0.1:1"))
    lam = clients.client("lambda")
    assert lam.meta.endpoint_url == "http://127.0.0.1:1"
    creds = clients._boto_session().get_credentials()
    assert creds.access_key == "stageflow-local"
    assert clients.client("lambda") is lam  # cached


def test_guard_refuses_a_request_redirected_off_loopback():
    clients = AwsClients(AwsTarget("us-east-1", True, "http://127.0.0.1:1"))
    s3 = clients.client("s3")

    def redirect(request, **_):
        request.url = "https://s3.amazonaws.com/x"

    # Runs before our guard handler: simulate something rewriting the URL.
    s3.meta.events.register_first("before-send", redirect)
    with pytest.raises(LocalGuardError, match="refused a request"):
        s3.list_buckets()


def test_local_env_for_children():
    env = local_env("http://127.0.0.1:5000", "eu-west-1")
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert env["AWS_REGION"] == "eu-west-1"
    with pytest.raises(LocalGuardError):
        local_env("https://example.com:443", "us-east-1")


def test_detect_local_mode_precedence(tmp_path):
    empty = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    assert detect_local_mode(True, {}) == (True, "--local")
    assert detect_local_mode(False, {"STAGEFLOW_LOCAL": "1"}) == (False, "--no-local")
    assert detect_local_mode(None, {"STAGEFLOW_LOCAL": "1"}) == (True, "STAGEFLOW_LOCAL=1")
    assert detect_local_mode(None, {"STAGEFLOW_LOCAL": "0"}) == (False, "STAGEFLOW_LOCAL=0")
    assert detect_local_mode(None, {"AWS_ACCESS_KEY_ID": "AKIA"}) == (False, "AWS credentials found")
    assert detect_local_mode(None, empty) == (True, "no AWS credentials found")
