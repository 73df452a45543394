"""What a Docker build is made of and what it returns, as data: the options, the commit it is tagged by,
the built images and the result; the pure rules for tags, labels, build args and the build key.

Nothing here talks to an engine (``docker_engine.py``) or builds (``docker_build.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageflow import git as gitq

DEFAULT_DOCKERFILE = "docker/Dockerfile"
DOCKERIGNORE = "docker/.dockerignore"
TARGETS = ("base", "builder", "test", "runtime", "lambda")
DEFAULT_TARGETS = ("runtime", "lambda")
PRIMARY_TARGET = "runtime"  # tagged without a suffix
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_STEP_FROM = re.compile(r"^Step \d+/\d+ : FROM \S+(?:\s+AS\s+(\S+))?", re.IGNORECASE)


@dataclass(frozen=True)
class GitInfo:
    sha: str  # full commit id
    version: str  # git describe --tags --always
    created: str  # RFC 3339 UTC commit time: reproducible OCI "created"


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
    python_version: str | None = None  # PYTHON_VERSION build arg ([service] runtime); None: the Dockerfile's
    handler: str | None = None  # HANDLER build arg ([service] handler); None: the Dockerfile's default


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

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "image_id": self.image_id,
            "tags": list(self.tags),
            "repo_digests": list(self.repo_digests),
            "digest": self.digest,
            "size": self.size,
        }


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
            "images": [i.to_json() for i in self.images],
        }


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


# -- pure rules --------------------------------------------------------------------------------------
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


def build_args(
    git: GitInfo,
    base_image: str | None,
    app_dir: str,
    python_version: str | None = None,
    handler: str | None = None,
) -> dict[str, str]:
    args = {"BUILD_DATE": git.created, "VCS_REF": git.sha, "VERSION": git.version, "APP_DIR": app_dir}
    if base_image:
        args["BASE_IMAGE"] = base_image
    if python_version:
        args["PYTHON_VERSION"] = python_version
    if handler:
        args["HANDLER"] = handler
    return args


def options_build_args(options: BuildOptions, git: GitInfo) -> dict[str, str]:
    return build_args(git, options.base_image, options.app_dir, options.python_version, options.handler)


def python_version_of(runtime: str) -> str:
    """``python3.12`` → ``3.12`` (the Dockerfile's PYTHON_VERSION); anything else is a usage error."""
    import re

    from stageflow.errors import UsageError

    m = re.fullmatch(r"python(3\.\d+)", runtime)
    if not m:
        raise UsageError(f"service.runtime {runtime!r} is not a Python runtime", "e.g. python3.11")
    return m.group(1)


def split_tag(ref: str) -> tuple[str, str]:
    """``host:port/name:tag`` → (``host:port/name``, ``tag``)."""
    repo, _, tag = ref.rpartition(":")
    if not repo or "/" in tag:
        return ref, "latest"
    return repo, tag


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


def build_key(options: BuildOptions, git: GitInfo, registry_host: str | None, context: bytes) -> str:
    """A digest of everything a build depends on: the context tar (the .dockerignore allowlist of the
    tree, Dockerfile included), the targets, the build args (commit, version, base image) and where it
    is pushed. Equal keys build equal images."""
    h = hashlib.sha256()
    args = options_build_args(options, git)
    head = [options.service, options.dockerfile, ",".join(options.targets), registry_host or "-"]
    head += [f"{k}={v}" for k, v in sorted(args.items())] + [str(options.push), str(options.no_cache)]
    h.update("\0".join(head).encode() + b"\0")
    h.update(hashlib.sha256(context).digest())
    return "sha256:" + h.hexdigest()


def git_info(root: Path) -> GitInfo:
    """The commit the images are tagged by. No git: exit 3; not a checkout with a commit: exit 2."""
    sha = gitq.required(root, "rev-parse", "HEAD")
    version = gitq.required(root, "describe", "--tags", "--always")
    stamp = gitq.required(root, "log", "-1", "--format=%ct", "HEAD")
    created = dt.datetime.fromtimestamp(int(stamp), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return GitInfo(sha=sha, version=version, created=created)
