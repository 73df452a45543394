import pytest

from stageflow.aws import AwsClients, AwsTarget, check_local_endpoint, detect_local_mode, local_env
from stageflow.errors import ExitCode, LocalGuardError


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:5000", "http://127.3.2.1:4566", "http://127.0.0.1:9/"]
)
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
        # issue 24 item 5: only http://127.x.y.z:PORT, nothing that could smuggle text into HCL or a URL
        "http://localhost:4566",
        "http://[::1]:9",
        "https://127.0.0.1:5000",
        "http://127.0.0.1:5000/path",
        "http://127.0.0.1:5000?x=1",
        "http://user@127.0.0.1:5000",
        'http://127.0.0.1:5000" \n}',
        'http://127.0.0.1:5000/${file("/etc/passwd")}',
        "http://127.0.0.1.example.com:5000",
        "http://127.0.0.256:5000",
        "http://127.0.0.1:0",
        "http://127.0.0.1:70000",
        "http://127.0.0.1:5000\x1b[2J",
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


def test_the_call_failpoint_kills_before_or_after_the_nth_call_over_every_client(monkeypatch, tmp_path):
    """STAGEFLOW_FAILPOINT=kill-before-call:N / kill-after-call:N (the crash tests' hook): counted over
    every client of the process, traced to STAGEFLOW_FAILPOINT_TRACE; unset, nothing is registered."""
    import signal

    from botocore.stub import Stubber

    from stageflow import aws
    from stageflow.errors import UsageError

    kills = []
    monkeypatch.setattr(aws.os, "kill", lambda pid, sig: kills.append(sig))
    for spec, killed_at in (
        ("kill-before-call:2", "KILL before 2 lambda.GetAlias"),
        ("kill-after-call:3", "KILL after 3 sns.Publish"),
    ):
        trace = tmp_path / f"{spec}.trace"
        monkeypatch.setattr(aws, "_FAILPOINT", aws.CallFailpoint(spec, str(trace)))
        clients = aws.AwsClients(aws.AwsTarget("us-east-1", True, "http://127.0.0.1:9"))
        lam, sns = clients.client("lambda"), clients.client("sns")
        with Stubber(lam) as ls, Stubber(sns) as ss:
            ls.add_response("get_alias", {"Name": "live", "FunctionVersion": "1"})
            ls.add_response("get_alias", {"Name": "live", "FunctionVersion": "1"})
            ss.add_response("publish", {"MessageId": "m"})
            lam.get_alias(FunctionName="f", Name="live")
            assert kills == []
            lam.get_alias(FunctionName="f", Name="live")
            sns.publish(TopicArn="arn:aws:sns:us-east-1:123456789012:t", Message="x")
        lines = trace.read_text().splitlines()
        assert lines[:2] == ["1 lambda.GetAlias", "2 lambda.GetAlias"] and killed_at in lines
        assert kills == [signal.SIGKILL]
        kills.clear()
    assert not aws.CallFailpoint("", None).active
    assert not aws.CallFailpoint("kill-after-record:3", None).active  # deploy/canary.py's failpoint
    with pytest.raises(UsageError):
        aws.CallFailpoint("kill-after-call:x", None)


def test_local_clients_ignore_proxy_variables(monkeypatch):
    """Issue 24 item 7: botocore reads HTTP(S)_PROXY only when its proxies config is None."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.2:8899")
    lam = AwsClients(AwsTarget("us-east-1", True, "http://127.0.0.1:1")).client("lambda")
    assert lam.meta.config.proxies == {}
    assert lam._endpoint.http_session._proxy_config.proxy_url_for("http://127.0.0.1:1/") is None


def test_children_bypass_proxies_for_the_emulator_and_keep_the_rest(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "internal.example")
    env = local_env("http://127.0.0.1:5000", "us-east-1")
    for var in ("NO_PROXY", "no_proxy"):
        parts = env[var].split(",")
        assert {"127.0.0.1", "127.0.0.0/8", "localhost"} <= set(parts) and "internal.example" in parts
