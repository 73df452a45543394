"""The one boto3 client factory, with the local-mode guard.

In local mode every client points at the embedded emulator on loopback with dummy credentials and no
instance-metadata lookup; any other endpoint is refused before a request is made, so nothing can
leak to a real AWS account.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stageflow.errors import LocalGuardError

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


def check_local_endpoint(endpoint: str | None) -> str:
    """Return the endpoint if it is the emulator on loopback over http; raise LocalGuardError otherwise."""
    if not endpoint:
        raise LocalGuardError("local mode has no emulator endpoint", "start it with: stageflow local up")
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or host not in LOOPBACK_HOSTS or parts.port is None:
        raise LocalGuardError(
            f"local mode refuses endpoint {endpoint!r}",
            "only the emulator on a loopback address with a port is allowed",
        )
    return endpoint


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
class AwsTarget:
    region: str
    local: bool
    endpoint: str | None = None
    max_attempts: int = 10

    def __post_init__(self):
        if self.local:
            check_local_endpoint(self.endpoint)


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
        from botocore.config import Config

        if self.target.local:
            endpoint = check_local_endpoint(self.target.endpoint)
            # The emulator answers unimplemented calls with retryable 500s: do not hammer it.
            cfg = Config(
                retries={"mode": "standard", "max_attempts": 2},
                connect_timeout=5,
                read_timeout=30,
                s3={"addressing_style": "path"},
            )
        else:
            endpoint = self.target.endpoint
            cfg = Config(retries={"mode": "adaptive", "max_attempts": self.target.max_attempts})
        client = self._boto_session().client(service, endpoint_url=endpoint, config=cfg)
        if self.target.local:
            _install_guard(client)
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
