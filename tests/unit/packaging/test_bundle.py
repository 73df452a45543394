"""Build once, deploy many: `stageflow package --out DIR` writes the zips and their manifest; a deploy
given DIR verifies every digest before anything runs (exit 3 naming the file) and never rebuilds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from stageflow import pipeline
from stageflow.build_artifact import ArtifactImage, with_build_artifact
from stageflow.cli import main
from stageflow.config import load
from stageflow.errors import EnvironmentFailure, ExitCode
from stageflow.packaging import bundle
from stageflow.packaging.lambda_zip import build_packages
from stageflow.services import DeployServices, ImageBuilder

DIGEST = "sha256:" + "ab" * 32


def project(tmp_path: Path) -> Path:
    (tmp_path / "src" / "svc").mkdir(parents=True)
    (tmp_path / "src" / "svc" / "__init__.py").write_text("")
    (tmp_path / "src" / "svc" / "handler.py").write_text("def handler(e, c=None):\n    return 1\n")
    (tmp_path / "stageflow.toml").write_text(
        '[service]\nname = "svc"\nsource = "src"\nhandler = "svc.handler.handler"\nruntime = "python3.11"\n'
    )
    return tmp_path / "stageflow.toml"


@pytest.fixture
def built(tmp_path):
    """(config, artifact dir): the Build stage's artifact of a small service, build/ cleaned after it."""
    cfg = load(project(tmp_path / "repo"))
    out = tmp_path / "artifact"
    main(
        ["--config", str(cfg.root / "stageflow.toml"), "package", "--out", str(out), "--image-digest", DIGEST]
    )
    return cfg, out


def test_package_writes_the_zips_and_a_manifest_of_their_digests(built):
    cfg, out = built
    manifest = json.loads((out / bundle.MANIFEST).read_text())
    assert manifest["service"] == "svc" and manifest["image"]["digest"] == DIGEST
    assert {e["role"] for e in manifest["files"].values()} == {"service", "rollback"}
    pk = build_packages(cfg, write=False)
    assert manifest["files"]["svc.zip"]["sha256"] == pk.service.hexdigest
    assert manifest["files"]["stageflow-rollback.zip"]["sha256"] == pk.rollback.hexdigest


def test_load_installs_the_verified_bytes_where_the_roots_read_them(built):
    cfg, out = built
    (cfg.root / "build").rename(cfg.root / "build.old")  # nothing built in this checkout
    b = bundle.load(out, cfg)
    assert (cfg.root / "build" / "lambda" / "svc.zip").read_bytes() == (out / "svc.zip").read_bytes()
    assert b.image_digest == DIGEST and "from the build artifact" in b.packages.checked


def tamper(out: Path) -> None:
    z = out / "svc.zip"
    z.write_bytes(z.read_bytes() + b"\0")


def test_a_zip_whose_digest_differs_from_the_manifest_is_refused_naming_it(built):
    cfg, out = built
    tamper(out)
    with pytest.raises(EnvironmentFailure, match=r"svc\.zip has sha256:.*the manifest says") as e:
        bundle.load(out, cfg)
    assert e.value.exit_code == ExitCode.ENVIRONMENT


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda out: (out / "stageflow-rollback.zip").unlink(), r"stageflow-rollback\.zip is missing"),
        (lambda out: (out / bundle.MANIFEST).unlink(), r"no manifest\.json"),
        (lambda out: (out / bundle.MANIFEST).write_text("{"), "unreadable"),
        (lambda out: (out / bundle.MANIFEST).write_text('{"format": 9, "files": {}}'), "format-1"),
    ],
)
def test_a_missing_file_or_a_bad_manifest_is_refused(built, spoil, message):
    _, out = built
    spoil(out)
    with pytest.raises(EnvironmentFailure, match=message):
        bundle.verify(out)


def test_another_services_artifact_is_refused(built, tmp_path):
    cfg, out = built
    m = json.loads((out / bundle.MANIFEST).read_text())
    m["service"] = "other"
    (out / bundle.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(EnvironmentFailure, match="built for service 'other'"):
        bundle.load(out, cfg)


def test_a_malformed_image_digest_is_a_usage_error(tmp_path):
    path = project(tmp_path)
    argv = ["--config", str(path), "package", "--out", str(tmp_path / "a"), "--image-digest", "latest"]
    assert main(argv) == ExitCode.USAGE
    assert not (tmp_path / "a" / bundle.MANIFEST).exists()


def test_deploy_with_a_tampered_artifact_exits_3_and_runs_nothing(built, capsys):
    cfg, out = built
    tamper(out)
    before = (cfg.root / "build" / "lambda" / "svc.zip").read_bytes()
    rc = main(["--config", str(cfg.root / "stageflow.toml"), "deploy", "dev", "--artifacts", str(out)])
    err = capsys.readouterr().err
    assert rc == ExitCode.ENVIRONMENT
    assert "svc.zip" in err and "manifest" in err
    assert "lint" not in err  # no stage ran
    assert (cfg.root / "build" / "lambda" / "svc.zip").read_bytes() == before  # nothing changed


def services(cfg, package, images) -> DeployServices:
    """The deploy chain's services: every one fails the test when used, but the build and image stages."""
    never = lambda *a, **k: pytest.fail("not used")  # noqa: E731
    values: dict = {f.name: never for f in dataclasses.fields(DeployServices)}
    values.update(config=cfg, package=package, images=images)
    return DeployServices(**values)


def test_the_deploy_chain_uses_the_artifact_and_never_rebuilds(built):
    cfg, out = built
    never = lambda *a, **k: pytest.fail("rebuilt")  # noqa: E731
    s = with_build_artifact(services(cfg, never, ImageBuilder(engine=never, build=never)), out)
    build = pipeline.stage_build(s.package)
    assert build.artifact.data == (out / "svc.zip").read_bytes()
    image = pipeline.stage_image("dev", s.images)
    assert isinstance(image.build, ArtifactImage) and image.record()["digest"] == DIGEST
    assert image.summary == f"image from the build artifact: {DIGEST}"


def test_an_artifact_without_an_image_says_so(built):
    cfg, out = built
    m = json.loads((out / bundle.MANIFEST).read_text())
    m["image"] = None
    (out / bundle.MANIFEST).write_text(json.dumps(m))
    never = lambda *a, **k: pytest.fail("rebuilt")  # noqa: E731
    s = with_build_artifact(services(cfg, never, ImageBuilder(engine=never, build=never)), out)
    image = pipeline.stage_image("dev", s.images)
    assert image.build is None and "carries no image digest" in image.summary
