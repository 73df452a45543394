"""Fault hooks of the local Lambda runtime: the emulator's counterpart of AWS FIS's Lambda actions.

On AWS, FIS injects faults into a function's invocations through the FIS Lambda extension
(``aws:lambda:invocation-add-delay``, ``aws:lambda:invocation-error``). Here the emulator's Invoke
(:mod:`stageflow.local.runtime`) asks :data:`REGISTRY` before it runs a version: a fault set on that
function version adds latency before the handler runs, fails the invocation without running it
(``errorType`` ``Stageflow.InjectedError``), or holds it until the function's timeout
(``Sandbox.Timedout``), for ``percent`` of the version's invocations. The handler's own duration plus
the added latency is what the runtime records as ``Duration``, as the extension's delay is on AWS.

Faults are set and cleared over the emulator's own loopback endpoint (``/_stageflow/faults``: PUT a
fault, DELETE clears one or all, GET lists them) by :class:`stageflow.chaos.injector.LocalFaults`.
Each fault carries a wall-clock expiry, so a chaos run killed mid-experiment leaves nothing behind for
longer than its ``expires_s``.

The chaos stage's traffic runs on the canary's virtual clock: an Invoke may name the minute its
metrics belong to in its client context (``custom["stageflow-metric-time"]``, ISO 8601), and the
runtime stamps its ``AWS/Lambda`` datapoints there instead of at the wall clock (see
:func:`metric_time`). Standard library only (it runs inside the emulator process).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

CONTROL_PATH = "/_stageflow/faults"
METRIC_TIME_KEY = "stageflow-metric-time"
KINDS = ("latency", "error", "timeout")
MAX_LATENCY_MS = 60_000.0
MAX_EXPIRES_S = 3600.0
INJECTED_ERROR = "Stageflow.InjectedError"


@dataclass(frozen=True)
class Fault:
    function: str
    version: str
    kind: str  # latency | error | timeout
    percent: float = 100.0
    latency_ms: float = 0.0
    expires_at: float = 0.0  # wall-clock seconds (time.time())

    @classmethod
    def from_json(cls, data: Mapping[str, Any], now: float) -> Fault:
        """A fault from the control endpoint's body; anything out of range raises ValueError."""
        kind = str(data.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        function, version = str(data.get("function") or ""), str(data.get("version") or "")
        if not function or not version:
            raise ValueError("function and version are required")
        percent = _number(data, "percent", 100.0, 0.0, 100.0)
        latency = _number(data, "latency_ms", 0.0, 0.0, MAX_LATENCY_MS)
        expires = _number(data, "expires_s", 600.0, 1.0, MAX_EXPIRES_S)
        return cls(function, version, kind, percent, latency, now + expires)


def _number(data: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number")
    value = float(value)
    if not (lo <= value <= hi):  # also refuses NaN
        raise ValueError(f"{key} must be between {lo:g} and {hi:g}")
    return value


class FaultRegistry:
    """The faults in force, by (function, version); thread-safe (the emulator serves 8 threads)."""

    def __init__(self, now: Callable[[], float] = time.time, draw: Callable[[], float] = random.random):
        self._faults: dict[tuple[str, str], Fault] = {}
        self._lock = threading.Lock()
        self._now = now
        self._draw = draw

    def put(self, fault: Fault) -> None:
        with self._lock:
            self._faults[(fault.function, fault.version)] = fault

    def clear(self, function: str | None = None, version: str | None = None) -> int:
        with self._lock:
            keys = [k for k in self._faults if function in (None, k[0]) and version in (None, k[1])]
            for k in keys:
                del self._faults[k]
            return len(keys)

    def active(self) -> list[Fault]:
        now = self._now()
        with self._lock:
            for k in [k for k, f in self._faults.items() if f.expires_at <= now]:
                del self._faults[k]
            return list(self._faults.values())

    def fault_for(self, function: str, version: str) -> Fault | None:
        """The fault this invocation of ``function`` version ``version`` gets (drawn by percent)."""
        if not self._faults:
            return None
        found = next((f for f in self.active() if (f.function, f.version) == (function, version)), None)
        if found is None or self._draw() * 100.0 >= found.percent:
            return None
        return found


REGISTRY = FaultRegistry()


def run_with_fault(
    fault: Fault | None, timeout_s: float, call: Callable[[], tuple[dict, float]]
) -> tuple[dict, float]:
    """Run one invocation (``call``: the runtime's invoke) under ``fault``: (answer, duration ms)."""
    if fault is None:
        return call()
    if fault.kind == "error":
        msg = f"fault injected by the chaos stage into {fault.function}:{fault.version}"
        return {"error": {"errorType": INJECTED_ERROR, "errorMessage": msg}, "log": msg}, 1.0
    if fault.kind == "timeout":
        time.sleep(timeout_s)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        msg = f"{stamp} Task timed out after {timeout_s:.2f} seconds (fault injected by the chaos stage)"
        return {"error": {"errorType": "Sandbox.Timedout", "errorMessage": msg}, "log": msg}, timeout_s * 1000
    delay_s = min(fault.latency_ms / 1000.0, timeout_s)
    time.sleep(delay_s)
    if delay_s >= timeout_s:
        msg = f"Task timed out after {timeout_s:.2f} seconds (latency injected by the chaos stage)"
        return {"error": {"errorType": "Sandbox.Timedout", "errorMessage": msg}, "log": msg}, timeout_s * 1000
    answer, ms = call()
    return answer, ms + delay_s * 1000


def metric_time(headers: Mapping[str, str] | None) -> datetime | None:
    """The minute an Invoke's metrics belong to, from its client context (naive UTC, as moto keeps
    datapoints); None when it names none or names it badly (then the wall clock, as Lambda)."""
    raw = None
    for key, value in (headers or {}).items():
        if key.lower() == "x-amz-client-context":
            raw = value
    if not raw:
        return None
    try:
        custom = json.loads(base64.b64decode(raw)).get("custom") or {}
        at = datetime.fromisoformat(str(custom[METRIC_TIME_KEY]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at


def client_context(at: datetime) -> str:
    """The ``ClientContext`` an Invoke passes to stamp its metrics at ``at`` (see :func:`metric_time`)."""
    stamp = at.astimezone(UTC).isoformat() if at.tzinfo else at.isoformat() + "+00:00"
    return base64.b64encode(json.dumps({"custom": {METRIC_TIME_KEY: stamp}}).encode()).decode()


def report_line(request_id: str, ms: float, memory_mb: int) -> str:
    """The REPORT line Lambda ends every invocation's log with (its tail carries it)."""
    return (
        f"REPORT RequestId: {request_id}\tDuration: {ms:.2f} ms\t"
        f"Billed Duration: {max(1, int(ms + 0.999))} ms\tMemory Size: {memory_mb} MB"
    )


def control_app(app: Callable, registry: FaultRegistry = REGISTRY) -> Callable:
    """The emulator's WSGI app with the fault control endpoint in front of it."""

    def wsgi(environ: dict, start_response: Callable):
        if not str(environ.get("PATH_INFO", "")).startswith(CONTROL_PATH):
            return app(environ, start_response)
        status, body = _control(environ, registry)
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return wsgi


def _control(environ: dict, registry: FaultRegistry) -> tuple[str, dict]:
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "GET":
        return "200 OK", {"faults": [asdict(f) for f in registry.active()]}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        if method == "PUT":
            fault = Fault.from_json(data, time.time())
            registry.put(fault)
            return "200 OK", {"fault": asdict(fault)}
        if method == "DELETE":
            return "200 OK", {"cleared": registry.clear(data.get("function"), data.get("version"))}
    except ValueError as exc:
        return "400 Bad Request", {"error": str(exc)}
    return "405 Method Not Allowed", {"error": f"{method} is not supported"}
