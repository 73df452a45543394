"""Deployment notifications: SNS and a Slack-compatible webhook.

A failed notification is a warning, never a failed deploy: the history is the record of truth.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from stageflow.ports import Message  # noqa: F401 - defined with the ports, used here
from stageflow.redact import REDACTOR

ICONS = {
    "started": "🚀",
    "approval_needed": "✋",
    "promoted": "✅",
    "succeeded": "🏁",
    "rolled_back": "⏪",
    "failed": "🔥",
}


class Notifier(Protocol):
    name: str

    def send(self, msg: Message) -> None: ...


class SnsNotifier:
    name = "sns"

    def __init__(self, client, topic_arn: str):
        self.sns = client
        self.topic_arn = topic_arn

    def send(self, msg: Message) -> None:
        body = REDACTOR.redact(json.dumps(msg.body(), default=str, sort_keys=True))
        self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=msg.subject,
            Message=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": msg.kind}},
        )


class SlackNotifier:
    name = "slack"

    def __init__(self, url: str, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout

    def send(self, msg: Message) -> None:
        lines = [f"{ICONS.get(msg.kind, '')} *{msg.subject}*", msg.text]
        reasons = msg.data.get("reasons") or []
        lines += [f"• {r}" for r in reasons]
        payload = {
            "text": REDACTOR.redact("\n".join(lines)),
            "attachments": [{"text": REDACTOR.redact(json.dumps(msg.body(), default=str))}],
        }
        if not self.url.startswith(("https://", "http://")):
            raise ValueError("webhook URL must be http(s)")
        req = urllib.request.Request(  # noqa: S310 - scheme checked above
            self.url,
            data=json.dumps(payload).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 # nosec B310 - http(s) only
            resp.read()


class Notifiers:
    """Sends to every channel; a channel that fails is reported and skipped."""

    def __init__(self, channels: Sequence[Notifier], reporter=None):
        self.channels = list(channels)
        self.reporter = reporter
        self.sent: list[Message] = []

    def send(self, msg: Message) -> None:
        self.sent.append(msg)
        for ch in self.channels:
            try:
                ch.send(msg)
            except Exception as exc:  # noqa: BLE001 - never fail a deploy on a notification
                if self.reporter is not None:
                    self.reporter.warn(f"notification via {ch.name} failed: {type(exc).__name__}: {exc}")


def for_environment(
    notifications,
    *,
    terraform_topic: str,
    sns_client: Callable[[], Any],
    reporter,
    environ: Mapping[str, str],
    local_guard: Callable[[str], object] | None = None,
) -> Notifiers:
    """The environment's channels (``[environments.ENV.notifications]``): its SNS topic (the one
    Terraform built for ``from-terraform``) and the Slack webhook named by ``slack_webhook_env``.
    ``local_guard`` (local mode): the webhook's ``scheme://host:port`` must pass it (loopback only:
    nothing leaves this machine)."""
    channels: list[Notifier] = []
    topic = notifications.sns_topic_arn
    if topic:
        channels.append(SnsNotifier(sns_client(), terraform_topic if topic == "from-terraform" else topic))
    hook_var = notifications.slack_webhook_env
    url = environ.get(hook_var) if hook_var else None
    if url:
        if local_guard is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            local_guard(f"{parts.scheme}://{parts.netloc}")
        channels.append(SlackNotifier(url))
    return Notifiers(channels, reporter)
