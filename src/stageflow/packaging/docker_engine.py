"""Where images are built and pushed: the Docker engine, its client, the registry.

The docker SDK is imported lazily, and only :func:`docker_client` creates a client. The engine comes
from ``DOCKER_HOST``, else the record ``scripts/docker-engine.sh up`` writes (``engine.json``), else the
default socket. The registry: ``environments.<env>.registry``; in local mode ``STAGEFLOW_REGISTRY`` or
the engine record's loopback registry; in AWS an ECR login from ``get_authorization_token``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stageflow.errors import EnvironmentFailure, LocalGuardError, UsageError
from stageflow.redact import REDACTOR

ENGINE_HINT = "start one with scripts/docker-engine.sh up"
DEFAULT_ENGINE_DIR = "/var/lib/stageflow-docker"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class DockerEngineUnavailable(EnvironmentFailure):
    def __init__(self, detail: str):
        super().__init__(f"no Docker engine: {detail}", ENGINE_HINT)


@dataclass(frozen=True)
class EngineInfo:
    """Where the engine, the local registry and the base image are (from engine.json or the env)."""

    docker_host: str | None = None
    registry: str | None = None
    base_image: str | None = None


@dataclass(frozen=True)
class RegistryTarget:
    host: str | None  # None: build and tag only
    auth: Mapping[str, str] | None = field(default=None, repr=False)
    kind: str = "local"  # local | ecr | configured


def engine_info(env: Mapping[str, str] | None = None) -> EngineInfo:
    """The engine record of scripts/docker-engine.sh, overridden by DOCKER_HOST / STAGEFLOW_REGISTRY."""
    env = os.environ if env is None else env
    record: dict[str, Any] = {}
    path = Path(env.get("STAGEFLOW_DOCKER_DIR") or DEFAULT_ENGINE_DIR) / "engine.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    return EngineInfo(
        docker_host=env.get("DOCKER_HOST") or record.get("docker_host"),
        registry=env.get("STAGEFLOW_REGISTRY") or record.get("registry"),
        base_image=env.get("STAGEFLOW_BASE_IMAGE") or record.get("base_image"),
    )


def docker_client(engine: EngineInfo | None = None, *, timeout: int = 900):
    """The one place that creates a docker SDK client. Raises DockerEngineUnavailable (exit 3)."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a dependency
        raise DockerEngineUnavailable("the docker Python package is not installed") from None
    engine = engine or engine_info()
    base_url = engine.docker_host or "unix:///var/run/docker.sock"
    try:
        client = docker.DockerClient(base_url=base_url, timeout=timeout)
        client.ping()
    except DockerException as exc:
        detail = " ".join(str(exc).split())[:160]
        raise DockerEngineUnavailable(f"cannot reach {base_url}: {detail}") from None
    except OSError as exc:
        raise DockerEngineUnavailable(f"cannot reach {base_url}: {exc.strerror or exc}") from None
    return client


def default_base_image(client, engine: EngineInfo, python_version: str | None = None) -> str | None:
    """The engine's base image when it exists there, else None: for ``python_version`` (``3.12``) its
    ``stageflow-base:python3.12`` first (a base carrying that Python), then the engine's default
    (stageflow-base:bookworm, Debian's Python 3.11; the Dockerfile refuses a base of another version)."""
    if not engine.base_image:
        return None
    from docker.errors import ImageNotFound

    repo = engine.base_image.rsplit(":", 1)[0]
    candidates = [f"{repo}:python{python_version}"] if python_version else []
    for image in [*candidates, engine.base_image]:
        try:
            client.images.get(image)
        except ImageNotFound:
            continue
        return image
    return None


# -- registry ----------------------------------------------------------------------------------------
def is_loopback_registry(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name in LOOPBACK_HOSTS


def resolve_registry(
    configured: str | None,
    *,
    local: bool,
    engine: EngineInfo,
    ecr_client: Callable[[], Any] | None = None,
) -> RegistryTarget:
    """Where to push: the configured registry, the local one in local mode, ECR otherwise."""
    if local:
        host = configured or engine.registry
        if not host:
            raise EnvironmentFailure("no local registry is running", ENGINE_HINT)
        if not is_loopback_registry(host):
            raise LocalGuardError(
                f"local mode refuses to push to {host}",
                "in local mode the registry must be on 127.0.0.1 (unset environments.<env>.registry)",
            )
        return RegistryTarget(host=host, auth=None, kind="local")
    if ecr_client is None:
        raise UsageError("no registry for a non-local build", "set environments.<env>.registry")
    data = _ecr_login(ecr_client)
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    REDACTOR.add(password)
    REDACTOR.add(data["authorizationToken"])
    endpoint = data["proxyEndpoint"]
    host = configured or urlsplit(endpoint).netloc or endpoint
    auth = {"username": user, "password": password, "serveraddress": endpoint}
    return RegistryTarget(host=host, auth=auth, kind="ecr")


def _ecr_login(ecr_client: Callable[[], Any]) -> Mapping[str, str]:
    """ECR's ``authorizationData``; an AWS error (credentials, permissions, network) is exit 3."""
    from stageflow.aws import aws_error

    try:
        return ecr_client().get_authorization_token()["authorizationData"][0]
    except Exception as exc:
        mapped = aws_error(exc, "cannot get an ECR login token")
        if mapped is None:
            raise
        raise mapped from None
