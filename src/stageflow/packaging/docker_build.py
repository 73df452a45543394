"""Multi-stage Docker builds through the docker SDK, tagged by commit and pushed to a registry.

``build_images`` builds each requested target of ``docker/Dockerfile`` (base → builder → test → runtime,
lambda) with host networking, streams the build output line by line to ``reporter.child``, tags the
image ``<service>:<git sha>`` and ``<service>:<git describe>`` (other targets than ``runtime`` get a
``-<target>`` suffix), pushes to the environment's registry and returns a frozen :class:`BuildResult`
with image ids and repository digests.

The docker SDK is imported lazily, and only :func:`docker_client` creates a client. The engine comes
from ``DOCKER_HOST``, else the record ``scripts/docker-engine.sh up`` writes (``engine.json``), else the
default socket. The registry: ``environments.<env>.registry``; in local mode ``STAGEFLOW_REGISTRY`` or
the engine record's loopback registry; in AWS an ECR login from ``get_authorization_token``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stageflow.errors import EnvironmentFailure, LocalGuardError, UsageError
from stageflow.redact import REDACTOR

ENGINE_HINT = "start one with scripts/docker-engine.sh up"
DEFAULT_ENGINE_DIR = "/var/lib/stageflow-docker"
DEFAULT_DOCKERFILE = "docker/Dockerfile"
DOCKERIGNORE = "docker/.dockerignore"
TARGETS = ("base", "builder", "test", "runtime", "lambda")
DEFAULT_TARGETS = ("runtime", "lambda")
PRIMARY_TARGET = "runtime"  # tagged without a suffix
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_STEP_FROM = re.compile(r"^Step \d+/\d+ : FROM \S+(?:\s+AS\s+(\S+))?", re.IGNORECASE)


class DockerEngineUnavailable(EnvironmentFailure):
    def __init__(self, detail: str):
        super().__init__(f"no Docker engine: {detail}", ENGINE_HINT)


class DockerBuildFailed(EnvironmentFailure):
    """A stage of the Dockerfile failed; ``stage`` names it (e.g. ``test`` when a unit test failed)."""

    def __init__(self, stage: str, target: str, detail: str):
        what = "the app's unit tests failed" if stage == "test" else "a build step failed"
        super().__init__(
            f"docker build failed in stage '{stage}' (target {target}): {what}: {detail}",
            "see the build output above",
        )
        self.stage = stage
        self.target = target


class DockerPushFailed(EnvironmentFailure):
    pass


# -- data --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineInfo:
    """Where the engine, the local registry and the base image are (from engine.json or the env)."""

    docker_host: str | None = None
    registry: str | None = None
    base_image: str | None = None


@dataclass(frozen=True)
class GitInfo:
    sha: str  # full commit id
    version: str  # git describe --tags --always
    created: str  # RFC 3339 UTC commit time: reproducible OCI "created"


@dataclass(frozen=True)
class RegistryTarget:
    host: str | None  # None: build and tag only
    auth: Mapping[str, str] | None = field(default=None, repr=False)
    kind: str = "local"  # local | ecr | configured


@dataclass(frozen=True)
class BuildOptions:
    root: Path  # the build context (the repository root)
    service: str
    targets: tuple[str, ...] = DEFAULT_TARGETS
    push: bool = True
    dockerfile: str = DEFAULT_DOCKERFILE
    base_image: str | None = None  # BASE_IMAGE build arg; None: the Dockerfile's default
    app_dir: str = "app"
    no_cache: bool = False  # rebuild every layer (the benchmark's cold build)


@dataclass(frozen=True)
class BuiltImage:
    target: str
    image_id: str
    tags: tuple[str, ...]
    repo_digests: tuple[str, ...] = ()
    size: int = 0

    @property
    def digest(self) -> str | None:
        """The pushed manifest digest (``sha256:...``), or None when not pushed."""
        return self.repo_digests[0].split("@", 1)[1] if self.repo_digests else None


@dataclass(frozen=True)
class BuildResult:
    service: str
    revision: str
    version: str
    created: str
    registry: str | None
    pushed: bool
    images: tuple[BuiltImage, ...]
    seconds: float
    reused: bool = False  # nothing changed since the recorded build: not rebuilt, not pushed again
    build_key: str | None = None  # digest of the build's inputs (see build_key)

    def image(self, target: str) -> BuiltImage:
        for img in self.images:
            if img.target == target:
                return img
        raise KeyError(target)

    @property
    def digest(self) -> str | None:
        """The digest the deployment record stores: the primary target's, else the first image's."""
        primary = next((i for i in self.images if i.target == PRIMARY_TARGET), None)
        return (primary or self.images[0]).digest if self.images else None

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "revision": self.revision,
            "version": self.version,
            "created": self.created,
            "registry": self.registry,
            "pushed": self.pushed,
            "digest": self.digest,
            "seconds": round(self.seconds, 1),
            "reused": self.reused,
            "build_key": self.build_key,
            "images": [
                {
                    "target": i.target,
                    "image_id": i.image_id,
                    "tags": list(i.tags),
                    "repo_digests": list(i.repo_digests),
                    "digest": i.digest,
                    "size": i.size,
                }
                for i in self.images
            ],
        }


# -- pure helpers ------------------------------------------------------------------------------------
def sanitize_tag(value: str) -> str:
    """A Docker tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}."""
    tag = _TAG_BAD.sub("-", value.strip()).lstrip(".-") or "unknown"
    return tag[:128]


def image_tags(repository: str, target: str, git: GitInfo) -> tuple[str, ...]:
    """``repo:<sha>`` and ``repo:<describe>``; a non-primary target gets a ``-<target>`` suffix."""
    suffix = "" if target == PRIMARY_TARGET else f"-{target}"
    tags = [f"{repository}:{sanitize_tag(git.sha + suffix)}"]
    version_tag = f"{repository}:{sanitize_tag(git.version + suffix)}"
    if version_tag not in tags:
        tags.append(version_tag)
    return tuple(tags)


def oci_labels(git: GitInfo) -> dict[str, str]:
    return {
        "org.opencontainers.image.created": git.created,
        "org.opencontainers.image.revision": git.sha,
        "org.opencontainers.image.version": git.version,
    }


def build_args(git: GitInfo, base_image: str | None, app_dir: str) -> dict[str, str]:
    args = {"BUILD_DATE": git.created, "VCS_REF": git.sha, "VERSION": git.version, "APP_DIR": app_dir}
    if base_image:
        args["BASE_IMAGE"] = base_image
    return args


def split_tag(ref: str) -> tuple[str, str]:
    """``host:port/name:tag`` → (``host:port/name``, ``tag``)."""
    repo, _, tag = ref.rpartition(":")
    if not repo or "/" in tag:
        return ref, "latest"
    return repo, tag


def is_loopback_registry(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name in LOOPBACK_HOSTS


def stage_of(line: str, current: str) -> str:
    """Follow ``Step N/M : FROM image AS name`` lines of the classic builder to the current stage."""
    m = _STEP_FROM.match(line)
    if not m:
        return current
    return m.group(1) or current


def read_dockerignore(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


# -- git ---------------------------------------------------------------------------------------------
def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=True
        )
    except FileNotFoundError:
        raise EnvironmentFailure("git is not installed", "install git") from None
    except subprocess.CalledProcessError as exc:
        detail = " ".join((exc.stderr or "").split())[:200]
        raise UsageError(
            f"cannot read the commit of {root}: git {' '.join(args)}: {detail}",
            "build from a git checkout with at least one commit",
        ) from None
    return out.stdout.strip()


def git_info(root: Path) -> GitInfo:
    sha = _git(root, "rev-parse", "HEAD")
    version = _git(root, "describe", "--tags", "--always")
    stamp = _git(root, "log", "-1", "--format=%ct", "HEAD")
    created = dt.datetime.fromtimestamp(int(stamp), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return GitInfo(sha=sha, version=version, created=created)


# -- engine and client -------------------------------------------------------------------------------
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


# -- registry ----------------------------------------------------------------------------------------
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
    try:
        data = ecr_client().get_authorization_token()["authorizationData"][0]
    except Exception as exc:  # noqa: BLE001 - botocore errors and credential errors alike
        detail = " ".join(str(exc).split())[:200]
        raise EnvironmentFailure(
            f"cannot get an ECR login token: {detail}", "check AWS credentials and ecr permissions"
        ) from None
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    REDACTOR.add(password)
    REDACTOR.add(data["authorizationToken"])
    endpoint = data["proxyEndpoint"]
    host = configured or urlsplit(endpoint).netloc or endpoint
    auth = {"username": user, "password": password, "serveraddress": endpoint}
    return RegistryTarget(host=host, auth=auth, kind="ecr")


# -- the build ---------------------------------------------------------------------------------------
class _LineBuffer:
    """Joins the SDK's stream chunks into whole lines."""

    def __init__(self, emit: Callable[[str], None]):
        self._emit = emit
        self._buf = ""

    def feed(self, text: str) -> list[str]:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self._emit(line)
        return lines

    def flush(self) -> None:
        if self._buf.strip():
            self._emit(self._buf)
        self._buf = ""


def build_context(root: Path, dockerfile: str) -> bytes:
    """The context tar: the repository root filtered by docker/.dockerignore (an allowlist)."""
    from docker.utils.build import tar

    if not (root / dockerfile).is_file():
        raise UsageError(f"no Dockerfile at {root / dockerfile}", "run from the repository root")
    patterns = read_dockerignore(root / DOCKERIGNORE)
    with tar(str(root), exclude=patterns, dockerfile=(dockerfile, None)) as fh:
        fh.seek(0)
        return fh.read()


def build_target(
    client, options: BuildOptions, target: str, git: GitInfo, context: bytes, emit: Callable[[str], None]
) -> str:
    """Build one target; returns the image id. Raises DockerBuildFailed naming the failing stage."""
    stage = "base"
    last: list[str] = []

    def on_line(line: str) -> None:
        nonlocal stage
        stage = stage_of(line, stage)
        last.append(line)
        del last[:-5]
        emit(line)

    lines = _LineBuffer(on_line)
    image_id = None
    stream = client.api.build(
        fileobj=io.BytesIO(context),
        custom_context=True,
        dockerfile=options.dockerfile,
        target=target,
        buildargs=build_args(git, options.base_image, options.app_dir),
        network_mode="host",
        rm=True,
        forcerm=True,
        pull=False,
        nocache=options.no_cache,
        decode=True,
    )
    for chunk in stream:
        if "stream" in chunk:
            lines.feed(chunk["stream"])
        elif "error" in chunk:
            lines.flush()
            detail = " ".join(str(chunk["error"]).split())
            raise DockerBuildFailed(stage, target, detail[:300])
        elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        elif chunk.get("status"):
            emit(str(chunk["status"]))
    lines.flush()
    if not image_id:
        raise DockerBuildFailed(stage, target, "the engine reported no image id")
    return image_id


def push_tag(client, ref: str, auth: Mapping[str, str] | None, emit: Callable[[str], None]) -> str:
    """Push one tag; returns the manifest digest."""
    repo, tag = split_tag(ref)
    digest = None
    kwargs = {"auth_config": dict(auth)} if auth else {}
    for chunk in client.api.push(repo, tag=tag, stream=True, decode=True, **kwargs):
        if "error" in chunk:
            detail = " ".join(str(chunk["error"]).split())[:300]
            raise DockerPushFailed(f"push of {ref} failed: {detail}", "check the registry and its login")
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = aux["Digest"]
        status = chunk.get("status")
        if status and not chunk.get("progressDetail") and status not in ("Preparing", "Waiting"):
            emit(f"{chunk.get('id', '')} {status}".strip())
    if not digest:
        raise DockerPushFailed(f"push of {ref} returned no digest", "check the registry")
    return digest


def build_images(
    client,
    options: BuildOptions,
    registry: RegistryTarget,
    *,
    git: GitInfo | None = None,
    info: Callable[[str, str, str], None] | None = None,
    child: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    context: bytes | None = None,
) -> BuildResult:
    """Build, tag and (optionally) push every target of ``options``; one call per CLI build."""
    unknown = [t for t in options.targets if t not in TARGETS]
    if unknown or not options.targets:
        raise UsageError(
            f"unknown build target {', '.join(unknown) or '(none)'}", f"targets: {', '.join(TARGETS)}"
        )
    info = info or (lambda phase, subject, message: None)
    child = child or (lambda line: None)
    git = git or git_info(options.root)
    started = clock()
    if context is None:
        context = build_context(options.root, options.dockerfile)
    push = options.push and registry.host is not None
    images: list[BuiltImage] = []
    for target in options.targets:
        info("build", target, f"building {options.service} at {git.version} ({git.sha[:12]})")
        image_id = build_target(client, options, target, git, context, child)
        image = client.images.get(image_id)
        local_tags = image_tags(options.service, target, git)
        remote_tags = image_tags(f"{registry.host}/{options.service}", target, git) if push else ()
        for ref in (*local_tags, *remote_tags):
            repo, tag = split_tag(ref)
            image.tag(repo, tag)
        digests: list[str] = []
        for ref in remote_tags:
            info("push", target, ref)
            digest = push_tag(client, ref, registry.auth, child)
            repo_digest = f"{split_tag(ref)[0]}@{digest}"
            if repo_digest not in digests:
                digests.append(repo_digest)
        image.reload()
        images.append(
            BuiltImage(
                target=target,
                image_id=image.id,
                tags=(*local_tags, *remote_tags),
                repo_digests=tuple(digests),
                size=int(image.attrs.get("Size") or 0),
            )
        )
        info(
            "build",
            target,
            f"{image.id[:19]} {', '.join(local_tags)}" + (f" → {digests[0]}" if digests else ""),
        )
    return BuildResult(
        service=options.service,
        revision=git.sha,
        version=git.version,
        created=git.created,
        registry=registry.host if push else None,
        pushed=push,
        images=tuple(images),
        seconds=clock() - started,
    )


def build_key(options: BuildOptions, git: GitInfo, registry_host: str | None, context: bytes) -> str:
    """A digest of everything a build depends on: the context tar (the .dockerignore allowlist of the
    tree, Dockerfile included), the targets, the build args (commit, version, base image) and where it
    is pushed. Equal keys build equal images."""
    import hashlib

    h = hashlib.sha256()
    args = build_args(git, options.base_image, options.app_dir)
    head = [options.service, options.dockerfile, ",".join(options.targets), registry_host or "-"]
    head += [f"{k}={v}" for k, v in sorted(args.items())] + [str(options.push), str(options.no_cache)]
    h.update("\0".join(head).encode() + b"\0")
    h.update(hashlib.sha256(context).digest())
    return "sha256:" + h.hexdigest()


def result_from_json(data: Mapping[str, Any]) -> BuildResult:
    return BuildResult(
        service=str(data["service"]),
        revision=str(data["revision"]),
        version=str(data["version"]),
        created=str(data["created"]),
        registry=data.get("registry"),
        pushed=bool(data["pushed"]),
        images=tuple(
            BuiltImage(
                target=str(i["target"]),
                image_id=str(i["image_id"]),
                tags=tuple(i.get("tags") or ()),
                repo_digests=tuple(i.get("repo_digests") or ()),
                size=int(i.get("size") or 0),
            )
            for i in data["images"]
        ),
        seconds=float(data.get("seconds") or 0.0),
        build_key=data.get("build_key"),
    )


def reusable_build(
    client, state_dir: Path, env_name: str, key: str, registry: RegistryTarget
) -> BuildResult | None:
    """The recorded build of ``env_name`` when it had exactly these inputs and its images are still
    there: every image id in the engine and, when pushed, every digest in the registry. Else None."""
    from docker.errors import DockerException

    path = state_dir / "builds" / f"docker-{env_name}.json"
    try:
        previous = result_from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if previous.build_key != key or not previous.images:
        return None
    auth = dict(registry.auth) if registry.auth else None
    try:
        for img in previous.images:
            client.images.get(img.image_id)
            for ref in img.repo_digests:
                data = client.images.get_registry_data(ref, auth_config=auth)
                if data.id != ref.split("@", 1)[1]:
                    return None
    except DockerException:
        return None  # an image or a pushed digest is gone: build again
    return previous


def record_build(state_dir: Path, env_name: str, result: BuildResult) -> Path:
    """Keep the last build per environment for the deploy step (which stores the digest)."""
    path = state_dir / "builds" / f"docker-{env_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def default_base_image(client, engine: EngineInfo) -> str | None:
    """The engine's base image (stageflow-base:bookworm) when it exists there, else None."""
    if not engine.base_image:
        return None
    from docker.errors import ImageNotFound

    try:
        client.images.get(engine.base_image)
    except ImageNotFound:
        return None
    return engine.base_image


def build_for_env(
    factory,
    env: str,
    *,
    targets: tuple[str, ...] = (),
    push: bool = True,
    base_image: str | None = None,
    engine: EngineInfo | None = None,
) -> BuildResult:
    """`stageflow build ENV` and the pipeline's image stage: build, tag, push, record."""
    cfg = factory.config
    factory.env(env)
    engine = engine or engine_info()
    client = docker_client(engine)
    registry = RegistryTarget(host=None)
    if push:
        registry = factory.registry(env, engine)
    options = BuildOptions(
        root=cfg.root,
        service=cfg.service.name,
        targets=tuple(targets) or DEFAULT_TARGETS,
        push=push,
        base_image=base_image or default_base_image(client, engine),
        app_dir=cfg.service.source,
    )
    rep = factory.reporter
    started = time.monotonic()
    git = git_info(cfg.root)
    context = build_context(options.root, options.dockerfile)
    key = build_key(options, git, registry.host if push else None, context)
    previous = reusable_build(client, factory.state_dir, env, key, registry)
    if previous is not None:
        for img in previous.images:
            where = img.repo_digests[0] if img.repo_digests else img.image_id[:19]
            rep.info("build", img.target, f"inputs unchanged ({key[:19]}…): not rebuilt, {where}")
        return dataclasses.replace(previous, reused=True, seconds=time.monotonic() - started)
    result = build_images(client, options, registry, git=git, info=rep.info, child=rep.child, context=context)
    result = dataclasses.replace(result, build_key=key)
    record_build(factory.state_dir, env, result)
    return result
