"""Deploy from the Build stage's artifact (build once, deploy many): the deploy chain's services with
the build stage replaced by the verified artifact directory (:mod:`stageflow.packaging.bundle`) and the
image stage by the image digest its manifest names. Nothing is rebuilt; everything else (the security
gate over what ships, Terraform, the canary) runs as always."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageflow.packaging import bundle

if TYPE_CHECKING:
    from stageflow.services import DeployServices


@dataclass(frozen=True)
class ArtifactImage:
    """The image the pipeline's image project built and pushed, as the artifact's manifest names it
    (the shape of ``docker_build.BuildResult`` the image stage records)."""

    digest: str
    uri: str | None
    revision: str | None
    images: tuple = ()
    version: str = "build-artifact"
    reused: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "uri": self.uri, "revision": self.revision, "from": "build artifact"}


def with_build_artifact(services: DeployServices, directory: Path) -> DeployServices:
    """``services`` deploying ``directory``: verified now (exit 3 naming the file when a digest differs
    from the manifest, before any stage runs), verified again and installed by the build stage."""
    from stageflow.pipeline import ImageResult
    from stageflow.services import ImageBuilder

    manifest, _ = bundle.verify(directory)
    image = manifest.get("image") or {}

    def package():
        return bundle.load(directory, services.config).packages

    def build(_env_name: str, _engine: Any) -> ArtifactImage | ImageResult:
        if not image:
            return ImageResult(None, "the build artifact carries no image digest (no image project ran)")
        return ArtifactImage(image["digest"], image.get("uri"), manifest.get("commit"))

    images = ImageBuilder(engine=lambda: None, build=build)  # never a Docker build here
    return dataclasses.replace(services, package=package, images=images)
