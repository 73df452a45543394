"""Real builds on a real engine (scripts/docker-engine.sh up): every target, the runtime image without a
network, a push to the loopback registry and a pull back by digest, and a planted failing unit test."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest

from stageflow.packaging import docker_build as db
from stageflow.packaging import docker_engine as de
from stageflow.packaging import images as im
from tests.conftest import REPO, require

pytestmark = pytest.mark.docker

FIXTURES = REPO / "tests" / "fixtures" / "docker"


@pytest.fixture(scope="module")
def engine():
    return de.engine_info()


@pytest.fixture(scope="module")
def client(engine):
    try:
        c = de.docker_client(engine, timeout=300)
    except de.DockerEngineUnavailable as exc:
        require(False, f"{exc.one_line()}")
    require(engine.registry is not None, "no local registry (scripts/docker-engine.sh up)")
    yield c
    c.close()


@pytest.fixture(scope="module")
def base_image(client, engine):
    image = de.default_base_image(client, engine)
    require(image is not None, f"base image {engine.base_image} missing (scripts/docker-engine.sh up)")
    return image


@pytest.fixture(scope="module")
def built(client, engine, base_image):
    """Every target of the repository's Dockerfile, pushed to the local registry."""
    registry = de.resolve_registry(None, local=True, engine=engine)
    options = im.BuildOptions(root=REPO, service="sample-api", targets=im.TARGETS, base_image=base_image)
    lines: list[str] = []
    result = db.build_images(client, options, registry, child=lines.append)
    return result, lines


def _copy_project(tmp_path):
    dst = tmp_path / "project"
    for sub in ("app", "docker"):
        shutil.copytree(REPO / sub, dst / sub, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    shutil.copy(REPO / "stageflow.toml", dst / "stageflow.toml")
    return dst


def test_every_target_builds_with_labels(built, client):
    result, _ = built
    assert [i.target for i in result.images] == list(im.TARGETS)
    git = im.git_info(REPO)
    assert result.revision == git.sha
    for target in ("runtime", "lambda"):
        img = client.images.get(result.image(target).image_id)
        labels = img.labels
        assert labels["org.opencontainers.image.revision"] == git.sha
        assert labels["org.opencontainers.image.version"] == git.version
        assert labels["org.opencontainers.image.created"] == git.created
        assert f"sample-api:{im.sanitize_tag(git.sha + ('' if target == 'runtime' else '-' + target))}" in (
            img.tags
        )
    runtime = client.images.get(result.image("runtime").image_id)
    builder = client.images.get(result.image("builder").image_id)
    assert runtime.attrs["Config"]["User"] == "10001:10001"
    assert "/opt/venv/bin" in " ".join(runtime.attrs["Config"]["Env"])
    # The runtime carries no test tooling: pytest lives only in the test stage.
    assert runtime.id != builder.id


def test_runtime_runs_without_network_as_non_root_and_is_healthy(built, client):
    result, _ = built
    image = client.images.get(result.image("runtime").image_id)
    health = image.attrs["Config"]["Healthcheck"]["Test"]
    assert health[0] == "CMD"
    container = client.containers.run(image.id, detach=True, network_mode="none")
    try:
        container.reload()
        assert list(container.attrs["NetworkSettings"]["Networks"]) == ["none"]
        code, out = container.exec_run(["id", "-u"])
        assert (code, out.strip()) == (0, b"10001")
        deadline = time.monotonic() + 20
        while True:  # the image's own health command, as the engine would run it
            code, out = container.exec_run(health[1:])
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert code == 0, out
        code, out = container.exec_run(
            [
                "python",
                "-c",
                "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8080/health').read().decode())",
            ]
        )
        assert code == 0 and json.loads(out)["status"] == "ok"
        for module in ("pytest", "pip"):
            code, _ = container.exec_run(["python", "-c", f"import {module}"])
            assert code != 0, f"{module} is in the runtime image"
        code, _ = container.exec_run(["test", "-e", "/opt/app/tests"])
        assert code != 0, "the app's tests leaked into the runtime image"
    finally:
        container.remove(force=True)


def test_health_command_fails_when_the_server_is_down(built, client):
    result, _ = built
    image = client.images.get(result.image("runtime").image_id)
    health = image.attrs["Config"]["Healthcheck"]["Test"]
    container = client.containers.run(image.id, ["sleep", "60"], detach=True, network_mode="none")
    try:
        code, _ = container.exec_run(health[1:])
        assert code != 0
    finally:
        container.remove(force=True)


def test_lambda_image_has_the_lambda_layout(built, client):
    result, _ = built
    image = client.images.get(result.image("lambda").image_id)
    cfg = image.attrs["Config"]
    assert cfg["WorkingDir"] == "/var/task"
    # the handler from stageflow.toml (HANDLER build arg) unless Lambda's image config names another
    assert "STAGEFLOW_HANDLER=service.handler.handler" in cfg["Env"]
    assert not cfg["Cmd"]
    assert cfg["Entrypoint"][:2] == ["/bin/sh", "-c"] and "awslambdaric" in cfg["Entrypoint"][2]
    script = (
        "import json, awslambdaric, service.handler as h;"
        "print(json.dumps(h.handler({'rawPath': '/health', 'requestContext': {'http': {'method': 'GET'}}})))"
    )
    out = client.containers.run(
        image.id, ["-c", script], entrypoint=["python"], network_mode="none", remove=True
    )
    assert json.loads(out)["statusCode"] == 200


def test_push_to_local_registry_and_pull_back_by_digest(built, client, engine):
    result, _ = built
    runtime = result.image("runtime")
    assert result.pushed and result.registry == engine.registry
    assert runtime.digest and runtime.digest.startswith("sha256:")
    repo = f"{engine.registry}/sample-api"
    assert runtime.repo_digests == (f"{repo}@{runtime.digest}",)
    # The registry itself serves the manifest under that digest.
    req = urllib.request.Request(
        f"http://{engine.registry}/v2/sample-api/manifests/{runtime.digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Docker-Content-Digest"] == runtime.digest
    # Drop the registry tags locally, then pull by digest: the same image comes back.
    for ref in runtime.tags:
        if ref.startswith(engine.registry):
            client.images.remove(ref, noprune=True)
    pulled = client.images.pull(f"{repo}@{runtime.digest}")
    assert pulled.id == runtime.image_id
    assert f"{repo}@{runtime.digest}" in pulled.attrs["RepoDigests"]


def test_source_only_change_reuses_the_dependency_layers(client, base_image, tmp_path, built):
    project = _copy_project(tmp_path)
    handler = project / "app" / "service" / "handler.py"
    handler.write_text(handler.read_text() + f"\n# a source-only change {uuid.uuid4()}\n")  # new every run
    git = im.GitInfo(sha="0" * 40, version="source-change", created="2026-01-01T00:00:00Z")
    options = im.BuildOptions(
        root=project, service="sample-api-src", targets=("runtime",), push=False, base_image=base_image
    )
    lines: list[str] = []
    result = db.build_images(client, options, de.RegistryTarget(None), git=git, child=lines.append)
    client.images.remove(result.image("runtime").image_id, force=True)  # keep the engine's disk small
    text = "\n".join(lines)
    for step in ("RUN pip install --no-cache-dir --no-compile -r", "RUN pip install --no-cache-dir -r"):
        i = text.index(step)
        assert text[i:].split("\n")[1].strip() == "---> Using cache", step
    i = text.index("RUN python -m pytest")
    assert "Using cache" not in text[i:].split("\n")[1]  # the tests ran again on the new source


def test_planted_failing_unit_test_fails_the_test_stage(cli, client, base_image, tmp_path, built):
    project = _copy_project(tmp_path)
    unit = project / "app" / "tests" / "unit"
    shutil.copy(FIXTURES / "planted_failure.py", unit / "test_planted_failure.py")
    for args in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(project),
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            "x",
        ],
        check=True,
        capture_output=True,
    )
    res = cli(
        "--local",
        "build",
        "dev",
        "--no-push",
        "--target",
        "runtime",
        "--base-image",
        base_image,
        cwd=project,
        timeout=300,
    )
    assert res.returncode == 3, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "stageflow: error: docker build failed in stage 'test' (target runtime): the app's unit tests failed"
    )
    assert "planted failure" in res.stderr  # pytest's own output was streamed
    assert "1 failed" in res.stderr
