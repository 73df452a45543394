"""Notifications on fakes: SNS through botocore's Stubber (validated against the real service model),
Slack against a webhook served on 127.0.0.1 inside the test, the fan-out and the per-environment wiring."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.stub import Stubber

from stageflow.config.model import Notifications
from stageflow.errors import UsageError
from stageflow.notify import Notifiers, SlackNotifier, SnsNotifier, for_environment
from stageflow.ports import Message
from stageflow.redact import REDACTOR

TOPIC = "arn:aws:sns:us-east-1:123456789012:stageflow-dev"
SECRET = "s3cr3t-db-password-9f2"


def _msg(**over) -> Message:
    base = {
        "kind": "rolled_back",
        "environment": "dev",
        "service": "orders",
        "deployment_id": "d-20260101-abc",
        "text": "version 7 rolled back to 6",
        "data": {"version": "7", "reasons": ["error rate 4.0% > 1.0%", "p95 900 ms > 500 ms"]},
    }
    return Message(**{**base, **over})


@pytest.fixture
def redactor():
    """The process-wide REDACTOR, with whatever a test registers forgotten afterwards."""
    saved = REDACTOR._forms
    yield REDACTOR
    REDACTOR._forms = saved


@pytest.fixture
def sns():
    client = boto3.client(
        "sns", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


class _Hook:
    """A Slack-compatible webhook on a free loopback port: records each POST, answers ``status``."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                hook.requests.append(
                    {"path": self.path, "content-type": self.headers["content-type"], "body": body}
                )
                self.send_response(hook.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hook():
    h = _Hook()
    yield h
    h.stop()


class _Channel:
    def __init__(self, name, fail=None):
        self.name = name
        self.fail = fail
        self.got: list[Message] = []

    def send(self, msg):
        self.got.append(msg)
        if self.fail is not None:
            raise self.fail


class _Reporter:
    def __init__(self):
        self.warnings: list[str] = []

    def warn(self, text):
        self.warnings.append(text)


# --- SNS ---------------------------------------------------------------------------------------------


def test_sns_publishes_subject_sorted_json_body_and_kind_attribute(sns):
    client, stub = sns
    msg = _msg()
    body = {
        "deployment_id": "d-20260101-abc",
        "environment": "dev",
        "kind": "rolled_back",
        "reasons": ["error rate 4.0% > 1.0%", "p95 900 ms > 500 ms"],
        "service": "orders",
        "text": "version 7 rolled back to 6",
        "version": "7",
    }
    stub.add_response(
        "publish",
        {"MessageId": "m-1"},
        {
            "TopicArn": TOPIC,
            "Subject": "[orders dev] rolled back: d-20260101-abc",
            "Message": json.dumps(body, sort_keys=True),
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "rolled_back"}},
        },
    )
    SnsNotifier(client, TOPIC).send(msg)


def test_sns_body_never_carries_a_registered_secret(sns, redactor):
    client, stub = sns
    redactor.add(SECRET)
    msg = _msg(text=f"connect failed with password {SECRET}", data={"dsn": f"postgres://u:{SECRET}@db/x"})
    redacted = {**msg.body(), "text": "connect failed with password ***", "dsn": "postgres://u:***@db/x"}
    stub.add_response(
        "publish",
        {"MessageId": "m-2"},
        {
            "TopicArn": TOPIC,
            "Subject": "[orders dev] rolled back: d-20260101-abc",
            "Message": json.dumps(redacted, sort_keys=True),
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "rolled_back"}},
        },
    )
    SnsNotifier(client, TOPIC).send(msg)


def test_sns_subject_is_cut_to_99_characters(sns):
    client, stub = sns
    msg = _msg(service="s" * 120)
    stub.add_response(
        "publish",
        {"MessageId": "m-3"},
        {
            "TopicArn": TOPIC,
            "Subject": "[" + "s" * 98,
            "Message": json.dumps(msg.body(), sort_keys=True),
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "rolled_back"}},
        },
    )
    SnsNotifier(client, TOPIC).send(msg)


def test_sns_client_error_reaches_the_caller(sns):
    client, stub = sns
    stub.add_client_error("publish", "NotFound", "Topic does not exist", 404)
    with pytest.raises(Exception, match="Topic does not exist") as info:
        SnsNotifier(client, TOPIC).send(_msg())
    assert type(info.value).__name__ == "NotFoundException"


# --- Slack -------------------------------------------------------------------------------------------


def test_slack_posts_icon_subject_text_reasons_and_json_attachment(hook):
    msg = _msg()
    SlackNotifier(hook.url).send(msg)
    assert len(hook.requests) == 1
    req = hook.requests[0]
    assert req["path"] == "/services/T000/B000/hook"
    assert req["content-type"] == "application/json"
    payload = json.loads(req["body"])
    assert payload["text"] == (
        "⏪ *[orders dev] rolled back: d-20260101-abc*\n"
        "version 7 rolled back to 6\n"
        "• error rate 4.0% > 1.0%\n"
        "• p95 900 ms > 500 ms"
    )
    assert [json.loads(a["text"]) for a in payload["attachments"]] == [msg.body()]


def test_slack_unknown_kind_has_no_icon_and_no_reasons_lines(hook):
    SlackNotifier(hook.url).send(_msg(kind="custom", data={}))
    payload = json.loads(hook.requests[0]["body"])
    assert payload["text"] == " *[orders dev] custom: d-20260101-abc*\nversion 7 rolled back to 6"


def test_slack_never_carries_a_registered_secret(hook, redactor):
    redactor.add(SECRET)
    msg = _msg(
        text=f"token {SECRET} rejected",
        data={"reasons": [f"login as admin:{SECRET} failed"], "dsn": f"postgres://u:{SECRET}@db/x"},
    )
    SlackNotifier(hook.url).send(msg)
    raw = hook.requests[0]["body"]
    assert SECRET.encode() not in raw
    payload = json.loads(raw)
    assert payload["text"].splitlines()[1:] == ["token *** rejected", "• login as admin:*** failed"]
    attachment = json.loads(payload["attachments"][0]["text"])
    assert attachment["text"] == "token *** rejected" and attachment["dsn"] == "postgres://u:***@db/x"


def test_slack_refuses_a_non_http_url_before_sending(hook):
    with pytest.raises(ValueError, match=r"^webhook URL must be http\(s\)$"):
        SlackNotifier("file:///etc/passwd").send(_msg())
    assert hook.requests == []


def test_slack_http_error_reaches_the_caller():
    h = _Hook(status=500)
    try:
        with pytest.raises(Exception, match="HTTP Error 500") as info:
            SlackNotifier(h.url).send(_msg())
        assert type(info.value).__name__ == "HTTPError"
        assert len(h.requests) == 1
    finally:
        h.stop()


# --- Notifiers: every channel, a failing one skipped -------------------------------------------------


def test_every_channel_gets_the_message_and_it_is_kept():
    a, b = _Channel("a"), _Channel("b")
    n = Notifiers([a, b], _Reporter())
    msg = _msg()
    n.send(msg)
    assert a.got == [msg] and b.got == [msg] and n.sent == [msg]


def test_a_failing_channel_is_reported_and_the_others_still_get_it():
    bad, good = _Channel("sns", fail=RuntimeError("throttled")), _Channel("slack")
    rep = _Reporter()
    n = Notifiers([bad, good], rep)
    msg = _msg()
    n.send(msg)
    assert good.got == [msg] and bad.got == [msg] and n.sent == [msg]
    assert rep.warnings == ["notification via sns failed: RuntimeError: throttled"]


def test_a_failing_channel_without_a_reporter_is_silent():
    good = _Channel("slack")
    n = Notifiers([_Channel("sns", fail=OSError("down")), good])
    n.send(_msg())
    assert len(good.got) == 1


def test_a_failing_real_slack_does_not_stop_sns(sns):
    client, stub = sns
    msg = _msg()
    stub.add_response(
        "publish",
        {"MessageId": "m-4"},
        {
            "TopicArn": TOPIC,
            "Subject": msg.subject,
            "Message": json.dumps(msg.body(), sort_keys=True),
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "rolled_back"}},
        },
    )
    rep = _Reporter()
    Notifiers([SlackNotifier("ftp://example.invalid/hook"), SnsNotifier(client, TOPIC)], rep).send(msg)
    assert rep.warnings == ["notification via slack failed: ValueError: webhook URL must be http(s)"]


# --- for_environment: which channels an environment gets ---------------------------------------------


def _channels(notifications, environ, **kw):
    made = []

    def sns_client():
        made.append("sns")
        return "the-sns-client"

    n = for_environment(
        notifications,
        terraform_topic="arn:aws:sns:us-east-1:123456789012:from-tf",
        sns_client=sns_client,
        reporter="the-reporter",
        environ=environ,
        **kw,
    )
    return n, made


def test_defaults_use_the_terraform_topic_and_the_slack_env_var():
    n, made = _channels(Notifications(), {"STAGEFLOW_SLACK_WEBHOOK": "https://hooks.example.com/x"})
    assert [c.name for c in n.channels] == ["sns", "slack"]
    sns_ch, slack_ch = n.channels
    assert sns_ch.topic_arn == "arn:aws:sns:us-east-1:123456789012:from-tf"
    assert sns_ch.sns == "the-sns-client" and made == ["sns"]
    assert slack_ch.url == "https://hooks.example.com/x" and slack_ch.timeout == 5.0
    assert n.reporter == "the-reporter"


def test_an_explicit_topic_is_used_as_given():
    n, _ = _channels(Notifications(sns_topic_arn=TOPIC), {})
    assert [(c.name, c.topic_arn) for c in n.channels] == [("sns", TOPIC)]


def test_no_topic_means_no_sns_and_no_client_is_made():
    n, made = _channels(Notifications(sns_topic_arn=""), {})
    assert n.channels == [] and made == []


def test_slack_only_when_its_variable_is_set_and_not_empty():
    assert [c.name for c in _channels(Notifications(), {})[0].channels] == ["sns"]
    assert [c.name for c in _channels(Notifications(), {"STAGEFLOW_SLACK_WEBHOOK": ""})[0].channels] == [
        "sns"
    ]
    custom = Notifications(sns_topic_arn="", slack_webhook_env="TEAM_HOOK")
    assert _channels(custom, {"STAGEFLOW_SLACK_WEBHOOK": "https://a.example/x"})[0].channels == []
    assert [c.url for c in _channels(custom, {"TEAM_HOOK": "https://b.example/y"})[0].channels] == [
        "https://b.example/y"
    ]
    off = Notifications(sns_topic_arn="", slack_webhook_env=None)
    assert _channels(off, {"STAGEFLOW_SLACK_WEBHOOK": "https://a.example/x"})[0].channels == []


def test_local_guard_sees_scheme_host_and_port_only():
    seen = []
    n, _ = _channels(
        Notifications(sns_topic_arn=""),
        {"STAGEFLOW_SLACK_WEBHOOK": "http://127.0.0.1:8765/services/T/B/secret-path?x=1"},
        local_guard=seen.append,
    )
    assert seen == ["http://127.0.0.1:8765"]
    assert [c.url for c in n.channels] == ["http://127.0.0.1:8765/services/T/B/secret-path?x=1"]


def test_local_guard_refusal_stops_the_wiring():
    def guard(origin):
        raise UsageError(f"{origin} is not on this machine")

    with pytest.raises(UsageError, match=r"^https://hooks\.slack\.com is not on this machine$"):
        _channels(
            Notifications(sns_topic_arn=""),
            {"STAGEFLOW_SLACK_WEBHOOK": "https://hooks.slack.com/services/T/B/x"},
            local_guard=guard,
        )


def test_local_guard_is_not_consulted_without_a_webhook():
    def guard(origin):
        raise AssertionError("called")

    n, _ = _channels(Notifications(), {}, local_guard=guard)
    assert [c.name for c in n.channels] == ["sns"]
