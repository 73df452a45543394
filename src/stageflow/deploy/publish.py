"""Publish a new Lambda version when anything that reaches traffic changed.

"Anything" is the code (CodeSha256) and the configuration a version freezes: environment variables
(injected secrets included), memory, timeout, handler, runtime, architectures, layers. The alias's
serving version is compared with ``$LATEST`` after the code is uploaded (when it differs) and after
Terraform and the secrets stage changed the configuration: nothing changed → no version; something
changed → a new version, which then goes out through the canary. AWS returns the old version for an
unchanged ``PublishVersion``; the emulator makes a new one, so the comparison is ours either way.
"""

from __future__ import annotations

from stageflow.deploy.traffic import AliasTraffic, lambda_call
from stageflow.errors import EnvironmentFailure
from stageflow.packaging.lambda_zip import LambdaZip
from stageflow.ports import Published  # noqa: F401 - defined with the ports, used here

# (label, key in GetFunctionConfiguration) of what a published version freezes
TRAFFIC_FIELDS = (
    ("code", "CodeSha256"),
    ("environment", "Environment"),
    ("memory", "MemorySize"),
    ("timeout", "Timeout"),
    ("handler", "Handler"),
    ("runtime", "Runtime"),
    ("architectures", "Architectures"),
    ("layers", "Layers"),
)


def _normal(key: str, cfg: dict):
    value = cfg.get(key)
    if key == "Environment":
        return dict(sorted(((value or {}).get("Variables") or {}).items()))
    if key == "Layers":
        return sorted(layer.get("Arn", "") for layer in value or [])
    if key == "Architectures":
        return list(value or ["x86_64"])
    return value


def differences(serving: dict, latest: dict) -> tuple[str, ...]:
    """What differs between two function configurations, by name only (never a value)."""
    out = []
    for label, key in TRAFFIC_FIELDS:
        a, b = _normal(key, serving), _normal(key, latest)
        if a == b:
            continue
        if key == "Environment":
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            out.append(f"environment ({', '.join(keys)})")
        else:
            out.append(label)
    return tuple(out)


class LambdaPublisher:
    """The Publisher port on AWS Lambda (and the emulator, through the same API)."""

    def __init__(self, lambda_client, function: str, alias: str):
        self.lam = lambda_client
        self.function = function
        self.alias = alias

    def _call(self, fn, **kwargs):
        return lambda_call(f"publishing {self.function}", fn, **kwargs)

    def _wait_updated(self) -> None:
        from botocore.exceptions import WaiterError

        try:
            self.lam.get_waiter("function_updated_v2").wait(
                FunctionName=self.function, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        except WaiterError as exc:
            raise EnvironmentFailure(f"publishing {self.function}: update did not finish: {exc}") from None

    def publish(self, artifact: LambdaZip, *, description: str = "") -> Published:
        traffic = AliasTraffic(self.lam, self.function, self.alias)
        current = traffic.state()
        serving = self._call(
            self.lam.get_function_configuration, FunctionName=self.function, Qualifier=current.primary
        )
        latest = self._call(self.lam.get_function_configuration, FunctionName=self.function)
        if latest["CodeSha256"] != artifact.code_sha256:
            self._call(self.lam.update_function_code, FunctionName=self.function, ZipFile=artifact.data)
            self._wait_updated()
            latest = self._call(self.lam.get_function_configuration, FunctionName=self.function)
        changed = differences(serving, latest)
        if not changed and current.settled:
            return Published(
                None,
                current.primary,
                serving["CodeSha256"],
                f"{self.function}:{self.alias} already serves this code and configuration "
                f"(version {current.primary})",
            )
        out = self._call(
            self.lam.publish_version,
            FunctionName=self.function,
            CodeSha256=latest["CodeSha256"],
            Description=description[:256],
        )
        what = ", ".join(changed) or "an unsettled alias"
        return Published(
            out["Version"],
            current.primary,
            latest["CodeSha256"],
            f"published version {out['Version']} ({what} changed)",
            changed,
        )


def publish(
    lambda_client, function: str, alias: str, artifact: LambdaZip, *, description: str = ""
) -> Published:
    """One-call form of :class:`LambdaPublisher` (kept for callers and tests)."""
    return LambdaPublisher(lambda_client, function, alias).publish(artifact, description=description)
