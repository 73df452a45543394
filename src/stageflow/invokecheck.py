"""Invoke a function with its smoke event and compare the answer with what the service expects.

The same check runs twice in a deploy (CodeDeploy's BeforeAllowTraffic, Flagger's pre-rollout):
before any traffic moves, on the new *version* (a failure rejects the release with the function's own
error line); and after promotion, through the *alias* (the ``smoke`` stage). Contract, per function
in ``stageflow.toml``: ``smoke = { event = "path/to/event.json", expect = { … } }`` — the event file is
relative to the repository root; ``expect`` lists keys that must be equal in the response (nested
tables compare key by key; a string that holds JSON compares with a table as JSON). With no ``smoke``,
an invocation without a ``FunctionError`` passes (its event is ``{}``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stageflow.errors import ConfigError

PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"


@dataclass(frozen=True)
class Smoke:
    """A function's smoke contract: the event to send and the keys the answer must have."""

    event_path: str | None = None
    expect: Mapping[str, Any] = field(default_factory=dict)

    def event(self, root: Path) -> bytes:
        if self.event_path is None:
            return b"{}"
        path = root / self.event_path
        try:
            text = path.read_text(encoding="utf-8")
            json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(
                "stageflow.toml", "smoke.event", f"{self.event_path}: not a readable JSON file ({exc})"
            ) from None
        return text.encode("utf-8")


@dataclass(frozen=True)
class InvokeResult:
    function: str
    qualifier: str
    status: str  # passed | failed | not run
    reason: str
    executed_version: str | None = None
    duration_s: float = 0.0
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def line(self) -> str:
        where = f"{self.function}:{self.qualifier}"
        if self.status == NOT_RUN:
            return f"{where} not run here" + (f" ({self.reason})" if self.reason else "")
        return f"{where} {self.status}" + (f": {self.reason}" if self.reason else "")

    def to_json(self) -> dict:
        return {
            "function": self.function,
            "qualifier": self.qualifier,
            "status": self.status,
            "reason": self.reason,
            "executed_version": self.executed_version,
            "duration_s": round(self.duration_s, 3),
        }


def mismatches(expect: Mapping[str, Any], actual: Any, where: str = "") -> list[str]:
    """What in ``actual`` differs from ``expect`` (keys listed in ``expect`` only), as readable lines."""
    out: list[str] = []
    if isinstance(actual, str) and isinstance(expect, Mapping):
        try:
            actual = json.loads(actual)
        except ValueError:
            return [f"{where or 'answer'}: expected a JSON object, got {actual[:80]!r}"]
    if not isinstance(actual, Mapping):
        return [f"{where or 'answer'}: expected an object, got {type(actual).__name__}"]
    for key, want in expect.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in actual:
            out.append(f"{path} missing")
            continue
        got = actual[key]
        if isinstance(want, Mapping):
            out += mismatches(want, got, path)
        elif isinstance(want, str) and isinstance(got, str) and _json_equal(want, got):
            continue
        elif want != got:
            out.append(f"{path} = {got!r}, expected {want!r}")
    return out


def _json_equal(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def error_line(payload: Any) -> str:
    """The function's own error, as Lambda reports it: ``errorType: errorMessage``."""
    if isinstance(payload, Mapping):
        kind, msg = payload.get("errorType"), payload.get("errorMessage")
        if kind or msg:
            return f"{kind}: {msg}" if kind and msg else str(kind or msg)
    return json.dumps(payload)[:300] if payload is not None else "no answer"


def invoke(lambda_client, function: str, qualifier: str, smoke: Smoke, root: Path) -> InvokeResult:
    """Invoke ``function:qualifier`` with the smoke event and judge the answer."""
    t0 = time.monotonic()
    resp = lambda_client.invoke(
        FunctionName=function, Qualifier=qualifier, Payload=smoke.event(root), LogType="Tail"
    )
    took = time.monotonic() - t0
    raw = resp["Payload"].read()
    try:
        payload = json.loads(raw or b"null")
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    tail = base64.b64decode(resp.get("LogResult") or b"").decode("utf-8", "replace")
    executed = resp.get("ExecutedVersion")
    if resp.get("FunctionError"):
        reason = error_line(payload)
        return InvokeResult(function, qualifier, FAILED, reason, executed, took, tail)
    wrong = mismatches(smoke.expect, payload) if smoke.expect else []
    if wrong:
        return InvokeResult(function, qualifier, FAILED, "; ".join(wrong), executed, took, tail)
    return InvokeResult(function, qualifier, PASSED, "", executed, took, tail)


def not_run(function: str, qualifier: str, why: str) -> InvokeResult:
    return InvokeResult(function, qualifier, NOT_RUN, why)


# -- the FunctionCheck port (stageflow.ports): the check of one function, wired by the factory ---------
@dataclass(frozen=True)
class LambdaInvokeCheck:
    """Invokes ``function:qualifier`` (a version before traffic, the alias after promotion) through the
    Lambda API: AWS, or the emulator whose local runtime runs the deployed zip. An answer that could not
    be had is an ``EnvironmentFailure`` (exit 3): the emulator's ``InvalidRuntimeException`` (no
    interpreter for the runtime here) with its reason, any other AWS failure as ``aws_error`` maps it."""

    lambda_client: Any
    function: str
    smoke: Smoke
    root: Path
    runtime: str = ""  # the function's runtime, for the hint when its interpreter is missing here

    def check(self, qualifier: str) -> InvokeResult:
        try:
            return invoke(self.lambda_client, self.function, qualifier, self.smoke, self.root)
        except ConfigError:
            raise
        except Exception as exc:
            failure = invoke_failure(exc, f"{self.function}:{qualifier}", self.runtime)
            if failure is None:
                raise  # a bug, not a failed call
            raise failure from None


def invoke_failure(exc: BaseException, where: str, runtime: str = ""):
    """``exc`` of an Invoke as one ``EnvironmentFailure`` line, or None when it is no failed call."""
    from stageflow.aws import aws_error
    from stageflow.errors import EnvironmentFailure

    err = getattr(exc, "response", None)
    code = ((err or {}).get("Error") or {}).get("Code") if isinstance(err, Mapping) else None
    if code == "InvalidRuntimeException":
        message = " ".join(str(((err or {}).get("Error") or {}).get("Message") or "").split())
        minor = runtime.removeprefix("python")
        hint = (
            f"install CPython {minor} (e.g. `pyenv install {minor}` or your package manager's {runtime})"
            if runtime and "interpreter" in message
            else None
        )
        return EnvironmentFailure(f"{where} cannot be invoked here: {message}", hint)
    mapped = aws_error(exc, f"invoking {where}")
    return mapped if isinstance(mapped, EnvironmentFailure) else None


@dataclass(frozen=True)
class NotRunHere:
    """The check where this machine cannot run the function (the factory decides: an ``arm64``
    function on an x86_64 machine in local mode): "not run", which passes, with why."""

    function: str
    why: str

    def check(self, qualifier: str) -> InvokeResult:
        return not_run(self.function, qualifier, self.why)
