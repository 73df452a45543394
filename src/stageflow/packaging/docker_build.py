"""Multi-stage Docker builds through the docker SDK, tagged by commit and pushed to a registry.

``build_images`` builds each requested target of ``docker/Dockerfile`` (base → builder → test → runtime,
lambda) with host networking, streams the build output line by line to the ``child`` callback, tags the
image ``<service>:<git sha>`` and ``<service>:<git describe>`` (other targets than ``runtime`` get a
``-<target>`` suffix), pushes to the environment's registry and returns a frozen
:class:`~stageflow.packaging.images.BuildResult` with image ids and repository digests.
``build_for_env`` is `stageflow build ENV` and the pipeline's image stage: it reuses the recorded build
when none of its inputs changed. The engine and the registry: ``docker_engine.py``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from stageflow.errors import EnvironmentFailure, UsageError
from stageflow.packaging.docker_engine import (
    EngineInfo,
    RegistryTarget,
    default_base_image,
    docker_client,
    engine_info,
)
from stageflow.packaging.images import (
    DEFAULT_TARGETS,
    DOCKERIGNORE,
    TARGETS,
    BuildOptions,
    BuildResult,
    BuiltImage,
    GitInfo,
    build_key,
    git_info,
    image_tags,
    options_build_args,
    python_version_of,
    read_dockerignore,
    result_from_json,
    split_tag,
    stage_of,
)

Emit = Callable[[str], None]
Info = Callable[[str, str, str], None]  # (phase, subject, message): the reporter's info line


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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BUILDER_NOISE = ("Step ", "--->", "Removing intermediate", "Running in", "Successfully")


class DockerPushFailed(EnvironmentFailure):
    pass


class _LineBuffer:
    """Joins the SDK's stream chunks into whole lines."""

    def __init__(self, emit: Emit):
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


def build_context(root: Path, dockerfile: str, app_dir: str = "app") -> bytes:
    """The context tar: the repository root filtered by docker/.dockerignore (an allowlist), plus the
    service's source directory (``[service] source``) when the allowlist does not name it."""
    from docker.utils.build import tar

    if not (root / dockerfile).is_file():
        raise UsageError(f"no Dockerfile at {root / dockerfile}", "run from the repository root")
    patterns = read_dockerignore(root / DOCKERIGNORE)
    source = app_dir.strip("/")
    if f"!{source}/" not in patterns and f"!{source}" not in patterns:
        at = next((i for i, p in enumerate(patterns) if p.startswith("**")), len(patterns))
        patterns.insert(at, f"!{source}/")  # before the exclusions inside the allowed directories
    with tar(str(root), exclude=patterns, dockerfile=(dockerfile, None)) as fh:
        fh.seek(0)
        return fh.read()


def build_target(client, options: BuildOptions, target: str, git: GitInfo, context: bytes, emit: Emit) -> str:
    """Build one target; returns the image id. Raises DockerBuildFailed naming the failing stage."""
    stage = "base"
    said = ""  # the last line a build step printed (its error message, when it fails)

    def on_line(line: str) -> None:
        nonlocal stage, said
        stage = stage_of(line, stage)
        plain = _ANSI.sub("", line).strip()
        if plain and not plain.startswith(_BUILDER_NOISE):
            said = plain
        emit(line)

    lines = _LineBuffer(on_line)
    image_id = None
    stream = client.api.build(
        fileobj=io.BytesIO(context),
        custom_context=True,
        dockerfile=options.dockerfile,
        target=target,
        buildargs=options_build_args(options, git),
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
            if said and "returned a non-zero code" in detail:  # say what the step said, not its script
                detail = f"{said[:240]} ({detail.rsplit(':', 1)[-1].strip()[:40]})"
            raise DockerBuildFailed(stage, target, detail[:300])
        elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        elif chunk.get("status"):
            emit(str(chunk["status"]))
    lines.flush()
    if not image_id:
        raise DockerBuildFailed(stage, target, "the engine reported no image id")
    return image_id


def push_tag(client, ref: str, auth: Mapping[str, str] | None, emit: Emit) -> str:
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
    info: Info | None = None,
    child: Emit | None = None,
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
        context = build_context(options.root, options.dockerfile, options.app_dir)
    push = options.push and registry.host is not None
    images = tuple(
        _build_one(client, options, target, git, context, registry if push else None, info, child)
        for target in options.targets
    )
    return BuildResult(
        service=options.service,
        revision=git.sha,
        version=git.version,
        created=git.created,
        registry=registry.host if push else None,
        pushed=push,
        images=images,
        seconds=clock() - started,
    )


def _build_one(
    client,
    options: BuildOptions,
    target: str,
    git: GitInfo,
    context: bytes,
    registry: RegistryTarget | None,  # None: not pushed
    info: Info,
    child: Emit,
) -> BuiltImage:
    """Build one target, tag it locally (and for the registry), push those tags."""
    info("build", target, f"building {options.service} at {git.version} ({git.sha[:12]})")
    image_id = build_target(client, options, target, git, context, child)
    image = client.images.get(image_id)
    local_tags = image_tags(options.service, target, git)
    remote_tags = image_tags(f"{registry.host}/{options.service}", target, git) if registry else ()
    for ref in (*local_tags, *remote_tags):
        repo, tag = split_tag(ref)
        image.tag(repo, tag)
    digests: list[str] = []
    for ref in remote_tags:
        info("push", target, ref)
        digest = push_tag(client, ref, registry.auth if registry else None, child)
        repo_digest = f"{split_tag(ref)[0]}@{digest}"
        if repo_digest not in digests:
            digests.append(repo_digest)
    image.reload()
    info(
        "build",
        target,
        f"{image.id[:19]} {', '.join(local_tags)}" + (f" → {digests[0]}" if digests else ""),
    )
    return BuiltImage(
        target=target,
        image_id=image.id,
        tags=(*local_tags, *remote_tags),
        repo_digests=tuple(digests),
        size=int(image.attrs.get("Size") or 0),
    )


# -- the recorded build --------------------------------------------------------------------------------
def _record_path(state_dir: Path, env_name: str) -> Path:
    return state_dir / "builds" / f"docker-{env_name}.json"


def reusable_build(
    client, state_dir: Path, env_name: str, key: str, registry: RegistryTarget
) -> BuildResult | None:
    """The recorded build of ``env_name`` when it had exactly these inputs and its images are still
    there: every image id in the engine and, when pushed, every digest in the registry. Else None."""
    from docker.errors import DockerException

    try:
        previous = result_from_json(json.loads(_record_path(state_dir, env_name).read_text(encoding="utf-8")))
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
    path = _record_path(state_dir, env_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def build_for_env(
    config,
    env_name: str,
    *,
    state_dir: Path,
    reporter,
    registry_for: Callable[[EngineInfo], RegistryTarget],
    targets: tuple[str, ...] = (),
    push: bool = True,
    base_image: str | None = None,
    engine: EngineInfo | None = None,
) -> BuildResult:
    """`stageflow build ENV` and the pipeline's image stage: build, tag, push, record.

    ``registry_for(engine)`` answers where ``env_name`` pushes; it is asked only when pushing, once an
    engine answered. An unchanged build (same inputs, images still there) is reused, not rebuilt."""
    engine = engine or engine_info()
    client = docker_client(engine)
    registry = registry_for(engine) if push else RegistryTarget(host=None)
    pyver = python_version_of(config.service.runtime)  # build args from stageflow.toml
    options = BuildOptions(
        root=config.root,
        service=config.service.name,
        targets=tuple(targets) or DEFAULT_TARGETS,
        push=push,
        base_image=base_image or default_base_image(client, engine, pyver),
        app_dir=config.service.source,
        python_version=pyver,
        handler=config.service.handler,
    )
    started = time.monotonic()
    git = git_info(config.root)
    context = build_context(options.root, options.dockerfile, options.app_dir)
    key = build_key(options, git, registry.host if push else None, context)
    previous = reusable_build(client, state_dir, env_name, key, registry)
    if previous is not None:
        for img in previous.images:
            where = img.repo_digests[0] if img.repo_digests else img.image_id[:19]
            reporter.info("build", img.target, f"inputs unchanged ({key[:19]}…): not rebuilt, {where}")
        return dataclasses.replace(previous, reused=True, seconds=time.monotonic() - started)
    result = build_images(
        client, options, registry, git=git, info=reporter.info, child=reporter.child, context=context
    )
    result = dataclasses.replace(result, build_key=key)
    record_build(state_dir, env_name, result)
    return result
