"""The one boto3 client factory, with the local-mode guard.

In local mode every client points at the embedded emulator on loopback with dummy credentials and no
instance-metadata lookup; any other endpoint is refused before a request is made, so nothing can
leak to a real AWS account.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from stageflow.errors import AwsError, LocalGuardError, StageflowError, UsageError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOCAL_ACCESS_KEY = "stageflow-local"  # dummy credentials: the emulator accepts anything
LOCAL_SECRET_KEY = "stageflow-local-dummy"  # noqa: S105 - not a secret, a placeholder for the emulator
CREDENTIAL_ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


_LOCAL_ENDPOINT = re.compile(r"http://127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})/?")
NO_PROXY_LOOPBACK = "127.0.0.1,127.0.0.0/8,localhost,::1"


def check_local_endpoint(endpoint: str | None) -> str:
    """Return the endpoint if it is the emulator on loopback — exactly ``http://127.x.y.z:PORT`` — and
    raise LocalGuardError otherwise (no other scheme, host, user info, path, query or fragment: the
    string reaches generated HCL and every child's environment)."""
    if not endpoint:
        raise LocalGuardError("local mode has no emulator endpoint", "start it with: stageflow local up")
    m = _LOCAL_ENDPOINT.fullmatch(endpoint)
    if m is None or any(int(o) > 255 for o in m.groups()[:3]) or not 0 < int(m.group(4)) < 65536:
        raise LocalGuardError(
            f"local mode refuses endpoint {endpoint!r}",
            "only the emulator at http://127.x.y.z:PORT is allowed",
        )
    return endpoint


def no_proxy_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``NO_PROXY``/``no_proxy`` with loopback added to what is set: a child (Terraform, the function
    runtime) sends emulator traffic directly even when HTTP(S)_PROXY / ALL_PROXY are set, and still uses
    the proxy for anything else it fetches."""
    env = os.environ if environ is None else environ
    have = [p for p in (env.get("NO_PROXY") or env.get("no_proxy") or "").split(",") if p.strip()]
    value = ",".join([*NO_PROXY_LOOPBACK.split(","), *have])
    return {"NO_PROXY": value, "no_proxy": value}


def local_env(endpoint: str, region: str) -> dict[str, str]:
    """Environment for child processes (terraform, scripts) in local mode."""
    check_local_endpoint(endpoint)
    return {
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
        "AWS_SESSION_TOKEN": "",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_PROFILE": "",
        **no_proxy_env(),
    }


def credentials_available(environ: dict[str, str] | None = None) -> bool:
    """Whether real AWS credentials can be found without asking the instance-metadata service.

    Environment variables, container credentials (CodeBuild) and the shared config/credentials
    files count. Set STAGEFLOW_USE_IMDS=1 on EC2 to let botocore ask the metadata service too.
    """
    env = os.environ if environ is None else environ
    if any(env.get(name) for name in CREDENTIAL_ENV_VARS):
        return True
    import botocore.session

    session = botocore.session.Session()
    for var, name in (
        ("credentials_file", "AWS_SHARED_CREDENTIALS_FILE"),
        ("config_file", "AWS_CONFIG_FILE"),
    ):
        if env.get(name):
            session.set_config_variable(var, env[name])
    # The environment was checked above (from `environ`, not the process); files and processes remain.
    skip = ["env"] if env.get("STAGEFLOW_USE_IMDS") == "1" else ["env", "iam-role", "container-role"]
    resolver = session.get_component("credential_provider")
    for name in skip:
        with contextlib.suppress(Exception):  # a provider absent in this botocore
            resolver.remove(name)
    try:
        return resolver.load_credentials() is not None
    except Exception:  # noqa: BLE001 - a broken profile is "no usable credentials"
        return False


def detect_local_mode(flag: bool | None, environ: dict[str, str] | None = None) -> tuple[bool, str]:
    """Decide local mode: --local/--no-local, then STAGEFLOW_LOCAL, then 'no credentials found'."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return flag, "--local" if flag else "--no-local"
    raw = env.get("STAGEFLOW_LOCAL", "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True, "STAGEFLOW_LOCAL=1"
    if raw in ("0", "false", "no", "off"):
        return False, "STAGEFLOW_LOCAL=0"
    if not credentials_available(env):
        return True, "no AWS credentials found"
    return False, "AWS credentials found"


@dataclass(frozen=True)
class RetryPolicy:
    """botocore's retries and timeouts: one policy for AWS and the emulator (only the endpoint differs).

    Adaptive mode: exponential backoff with jitter on throttling, 5xx and connection errors, plus a
    client-side rate limiter that slows down while the service throttles. ``max_attempts`` counts the
    first try: 5 attempts turn a 5 % fault rate into about 3e-7 failed calls (0.05^5), and a persistent
    fault into an error within ~15 s (the backoff caps at 20 s per retry). The timeouts bound a hung
    connection: a call never waits longer than connect + read per attempt.

    Overrides (same names in every mode): ``STAGEFLOW_AWS_MAX_ATTEMPTS``,
    ``STAGEFLOW_AWS_CONNECT_TIMEOUT``, ``STAGEFLOW_AWS_READ_TIMEOUT`` (seconds).
    """

    mode: str = "adaptive"
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def __post_init__(self):
        if self.mode not in ("adaptive", "standard", "legacy"):
            raise UsageError(f"unknown botocore retry mode {self.mode!r}", "adaptive, standard or legacy")
        if not 1 <= self.max_attempts <= 20:
            raise UsageError(f"AWS max attempts must be 1-20, got {self.max_attempts}")
        if not (0 < self.connect_timeout <= 300 and 0 < self.read_timeout <= 900):
            raise UsageError("AWS timeouts must be positive (connect <= 300 s, read <= 900 s)")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RetryPolicy:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, key, kind in (
            ("STAGEFLOW_AWS_MAX_ATTEMPTS", "max_attempts", int),
            ("STAGEFLOW_AWS_CONNECT_TIMEOUT", "connect_timeout", float),
            ("STAGEFLOW_AWS_READ_TIMEOUT", "read_timeout", float),
        ):
            raw = (env.get(name) or "").strip()
            if not raw:
                continue
            try:
                values[key] = kind(raw)
            except ValueError:
                raise UsageError(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(values[key]):
                raise UsageError(f"{name}={raw!r} is not a finite number")
        return cls(**values)

    def botocore_config(self, **extra):
        from botocore.config import Config

        return Config(
            retries={"mode": self.mode, "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            **extra,
        )


@dataclass(frozen=True)
class AwsTarget:
    region: str
    local: bool
    endpoint: str | None = None
    max_attempts: int | None = None  # deprecated: use retry=RetryPolicy(max_attempts=N)
    retry: RetryPolicy = field(default_factory=RetryPolicy.from_env)

    def __post_init__(self):
        if self.local:
            check_local_endpoint(self.endpoint)
        if self.max_attempts is not None and self.max_attempts != self.retry.max_attempts:
            object.__setattr__(self, "retry", replace(self.retry, max_attempts=self.max_attempts))


@dataclass
class AwsClients:
    """Creates and caches boto3 clients for one target. The only place boto3 clients are made."""

    target: AwsTarget
    _session: Any = field(default=None, init=False, repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def _boto_session(self):
        if self._session is None:
            import boto3

            if self.target.local:
                os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
                self._session = boto3.session.Session(
                    aws_access_key_id=LOCAL_ACCESS_KEY,
                    aws_secret_access_key=LOCAL_SECRET_KEY,
                    region_name=self.target.region,
                )
            else:
                self._session = boto3.session.Session(region_name=self.target.region)
        return self._session

    def client(self, service: str):
        if service in self._cache:
            return self._cache[service]
        if self.target.local:
            endpoint = check_local_endpoint(self.target.endpoint)
            # proxies={}: never through HTTP(S)_PROXY / ALL_PROXY (botocore reads them only when None)
            cfg = self.target.retry.botocore_config(s3={"addressing_style": "path"}, proxies={})
        else:
            endpoint = self.target.endpoint
            cfg = self.target.retry.botocore_config()
        client = self._boto_session().client(service, endpoint_url=endpoint, config=cfg)
        if self.target.local:
            _install_guard(client)
        _call_failpoint().install(client)
        self._cache[service] = client
        return client


def _install_guard(client) -> None:
    """Refuse, before sending, any request whose URL is not on loopback (belt and braces)."""

    def _before_send(request, **_kwargs):
        host = (urlsplit(request.url).hostname or "").lower()
        if host not in LOOPBACK_HOSTS:
            raise LocalGuardError(f"local mode refused a request to {host!r}", "only the emulator is allowed")
        return None

    client.meta.events.register("before-send", _before_send)


# -- the call failpoint (a test hook) ----------------------------------------------------------------
class CallFailpoint:
    """Test hook for the crash tests (tests/reliability/test_kills.py): counts this process's AWS API
    calls, over every client, and SIGKILLs the process just before the N-th call is sent
    (``STAGEFLOW_FAILPOINT=kill-before-call:N``) or just after its answer arrived and before the tool
    saw it (``kill-after-call:N``): between any two calls, e.g. between an alias update and the
    history record of it. ``STAGEFLOW_FAILPOINT_TRACE=FILE`` appends one line per call
    (``N Service.Operation``) and ``KILL before|after N Service.Operation`` when it fires. Read once
    per process, here, where every boto3 client is made; unset, it registers nothing."""

    def __init__(self, spec: str, trace: str | None):
        self.when: str | None = None
        self.at = 0
        self.trace = trace or None
        self.count = 0
        for when in ("before", "after"):
            prefix = f"kill-{when}-call:"
            if spec.startswith(prefix):
                try:
                    self.at = int(spec[len(prefix) :])
                except ValueError:
                    raise UsageError(f"STAGEFLOW_FAILPOINT={spec!r}: N must be a whole number") from None
                self.when = when

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> CallFailpoint:
        env = os.environ if environ is None else environ
        return cls(env.get("STAGEFLOW_FAILPOINT", ""), env.get("STAGEFLOW_FAILPOINT_TRACE"))

    @property
    def active(self) -> bool:
        return self.when is not None or self.trace is not None

    def install(self, client) -> None:
        if self.active:
            # first, and as specific as a stub's handler, so a stubbed answer cannot skip the count
            client.meta.events.register_first("before-call.*.*", self._before)
            client.meta.events.register_first("after-call.*.*", self._after)

    def _note(self, line: str) -> None:
        if self.trace:
            with open(self.trace, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    @staticmethod
    def _name(model) -> str:
        return f"{model.service_model.service_id.hyphenize()}.{model.name}"

    def _before(self, model, **_kwargs):
        self.count += 1
        self._note(f"{self.count} {self._name(model)}")
        if self.when == "before" and self.count == self.at:
            self._kill("before", model)

    def _after(self, model, **_kwargs):
        if self.when == "after" and self.count == self.at:
            self._kill("after", model)

    def _kill(self, when: str, model) -> None:
        import signal

        self._note(f"KILL {when} {self.count} {self._name(model)}")
        os.kill(os.getpid(), signal.SIGKILL)


_FAILPOINT: CallFailpoint | None = None


def _call_failpoint() -> CallFailpoint:
    global _FAILPOINT  # noqa: PLW0603 - one count per process, across every client
    if _FAILPOINT is None:
        _FAILPOINT = CallFailpoint.from_env()
    return _FAILPOINT


# -- botocore errors as stageflow errors ------------------------------------------------------------
def aws_error(exc: BaseException, doing: str | None = None) -> StageflowError | None:
    """A botocore error as a one-line :class:`AwsError` (exit 3); ``None`` for anything else.

    ``doing`` names what the tool was doing ("reading the canary's metrics"). The message carries the
    operation, the error code and how many attempts were made, never request parameters.
    """
    try:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(exc, StageflowError):
        return exc
    prefix = f"{doing}: " if doing else ""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {}) or {}
        code = err.get("Code") or "error"
        message = " ".join(str(err.get("Message") or "").split())[:200]
        attempts = (exc.response.get("ResponseMetadata", {}) or {}).get("RetryAttempts", 0) + 1
        op = getattr(exc, "operation_name", "") or "call"
        hint = _hint_for(code, attempts)
        text = f"{prefix}AWS {op} failed: {code}" + (f": {message}" if message else "")
        if attempts > 1:
            text += f" (after {attempts} attempts)"
        return AwsError(text, hint, operation=op, code=code, attempts=attempts)
    if isinstance(exc, NoCredentialsError):
        return AwsError(
            f"{prefix}no AWS credentials", "configure credentials, or use --local", code="NoCredentials"
        )
    if isinstance(
        exc, ConnectTimeoutError | ReadTimeoutError | EndpointConnectionError | ConnectionClosedError
    ):
        kind = type(exc).__name__
        return AwsError(
            f"{prefix}AWS unreachable: {kind}: {' '.join(str(exc).split())[:200]}",
            "check the network and the endpoint; a deployment in flight can be resumed: see stageflow status",
            code=kind,
        )
    if isinstance(exc, BotoCoreError):
        return AwsError(f"{prefix}AWS client error: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    return None


THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)


def _hint_for(code: str, attempts: int) -> str:
    if code in THROTTLING_CODES:
        return "AWS kept throttling; retry later or raise the account's limits"
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return "the credentials lack a permission for this call"
    if code in (
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    ):
        return "the AWS credentials are invalid or expired; refresh them"
    if code.startswith(("Internal", "ServiceUnavailable")) or code in ("500", "502", "503", "504"):
        return "AWS is failing; retry later; a deployment in flight can be resumed: see stageflow status"
    return "see the AWS error code"
