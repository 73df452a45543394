"""The local fault injector: the emulator's fault hooks (:mod:`stageflow.local.faults`), set over its
loopback endpoint. The counterpart of FIS's Lambda actions on AWS (:mod:`stageflow.chaos.fis`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence

from stageflow.chaos.model import Experiment
from stageflow.errors import EnvironmentFailure
from stageflow.local.faults import CONTROL_PATH

LOCAL_KINDS = {"latency": "latency", "error": "error", "timeout": "timeout"}


class NotInjectable(Exception):
    """This injector cannot make the experiment's fault (the runner reports it as not run here)."""


class LocalFaults:
    """PUT/DELETE ``/_stageflow/faults`` on the emulator (loopback only, checked by the root)."""

    def __init__(self, endpoint: str, *, expires_s: float = 900.0):
        self.url = endpoint.rstrip("/") + CONTROL_PATH
        self.expires_s = expires_s
        self._set: list[tuple[str, str]] = []

    @staticmethod
    def supports(experiment: Experiment) -> bool:
        return experiment.fault in LOCAL_KINDS

    def _call(self, method: str, body: dict) -> dict:
        req = urllib.request.Request(  # noqa: S310 # nosec B310 - the loopback emulator (checked by the root)
            self.url,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 # nosec B310 - the loopback emulator
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise EnvironmentFailure(f"the emulator refused the fault ({exc.code}): {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise EnvironmentFailure(f"the emulator's fault hooks did not answer: {exc}") from None

    def start(self, function: str, versions: Sequence[str], experiment: Experiment) -> None:
        if not self.supports(experiment):
            raise NotInjectable(f"the local runtime cannot inject {experiment.fault}")
        for version in versions:
            self._call(
                "PUT",
                {
                    "function": function,
                    "version": version,
                    "kind": LOCAL_KINDS[experiment.fault],
                    "percent": experiment.percent,
                    "latency_ms": experiment.latency_ms,
                    "expires_s": self.expires_s,
                },
            )
            self._set.append((function, version))

    def stop(self) -> None:
        while self._set:
            function, version = self._set.pop()
            self._call("DELETE", {"function": function, "version": version})

    def active(self) -> list[dict]:
        req = urllib.request.Request(self.url, method="GET")  # noqa: S310 # nosec B310 - the loopback emulator
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 # nosec B310 - the loopback emulator
            return list(json.loads(resp.read()).get("faults") or [])
