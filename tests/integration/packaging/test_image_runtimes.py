"""The Dockerfile takes the Python version and the handler from stageflow.toml: the sample (python3.11,
service.handler.handler) and a fixture service on python3.12 with another package and handler, built on
the real engine through `build_for_env` (the build args come from the config), their lambda images run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stageflow.config import load
from stageflow.packaging import docker_build as db
from stageflow.packaging import docker_engine as de
from tests.conftest import REPO, require
from tests.helpers.images import python_base_image

pytestmark = pytest.mark.docker

HEALTH = {"rawPath": "/health", "requestContext": {"http": {"method": "GET"}}}


class Quiet:
    def info(self, *a, **k): ...
    def child(self, line): ...


@pytest.fixture(scope="module")
def engine():
    return de.engine_info()


@pytest.fixture(scope="module")
def client(engine):
    try:
        c = de.docker_client(engine, timeout=600)
    except de.DockerEngineUnavailable as exc:
        require(False, exc.one_line())
    require(de.default_base_image(c, engine) is not None, "no base image (scripts/docker-engine.sh up)")
    yield c
    c.close()


def fixture_service(root: Path) -> Path:
    """python3.12, source `src/`, handler `orders.api.run`: nothing like the sample."""
    pkg = root / "src" / "orders"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "api.py").write_text(
        "import json, sys\n\n\ndef run(event, context=None):\n"
        "    v = '%d.%d' % sys.version_info[:2]\n"
        "    return {'statusCode': 200, 'body': json.dumps({'python': v, 'path': event.get('rawPath')})}\n"
    )
    (root / "src" / "requirements.txt").write_text("")
    (root / "src" / "tests" / "unit").mkdir(parents=True)
    (root / "src" / "tests" / "pytest.ini").write_text("[pytest]\n")
    (root / "src" / "tests" / "unit" / "test_api.py").write_text(
        "from orders.api import run\n\n\ndef test_run():\n    assert run({})['statusCode'] == 200\n"
    )
    shutil.copytree(REPO / "docker", root / "docker")
    for name in (".dockerignore",):
        if (REPO / name).exists():
            shutil.copy(REPO / name, root / name)
    (root / "stageflow.toml").write_text(
        '[service]\nname = "orders"\nsource = "src"\nhandler = "orders.api.run"\nruntime = "python3.12"\n'
    )
    return root / "stageflow.toml"


def commit(root: Path) -> None:
    import subprocess

    ident = ["-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, timeout=60)


def build_lambda(config, engine):
    return db.build_for_env(
        config,
        "dev",
        state_dir=config.root / ".stageflow",
        reporter=Quiet(),
        registry_for=lambda _e: pytest.fail("not pushed"),
        targets=("lambda",),
        push=False,
        engine=engine,
    )


def run_handler(client, image_id: str, handler: str) -> dict:
    module, _, func = handler.rpartition(".")
    script = (
        f"import json, importlib; print(json.dumps(importlib.import_module('{module}').{func}({HEALTH!r})))"
    )
    out = client.containers.run(
        image_id, ["-c", script], entrypoint=["python"], network_mode="none", remove=True
    )
    return json.loads(out)


def test_the_sample_builds_with_its_python_and_handler(client, engine, tmp_path):
    project = tmp_path / "sample"
    for sub in ("app", "docker"):
        shutil.copytree(
            REPO / sub, project / sub, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache")
        )
    for name in ("stageflow.toml", ".dockerignore"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, project / name)
    commit(project)
    cfg = load(project / "stageflow.toml")
    result = build_lambda(cfg, engine)
    image = client.images.get(result.images[0].image_id)
    env = dict(e.split("=", 1) for e in image.attrs["Config"]["Env"])
    assert env["STAGEFLOW_HANDLER"] == cfg.service.handler == "service.handler.handler"
    assert run_handler(client, image.id, cfg.service.handler)["statusCode"] == 200
    version = ["-c", "import sys; print(sys.version_info[:2])"]
    out = client.containers.run(image.id, version, entrypoint=["python"], network_mode="none", remove=True)
    assert out.decode().strip() == "(3, 11)"


def test_a_service_on_another_runtime_builds_with_that_python_and_its_handler(client, engine, tmp_path):
    base = python_base_image(client, de.default_base_image(client, engine), "3.12")
    require(base is not None, "no CPython 3.12 under pyenv to make a python3.12 base image")
    cfg = load(fixture_service(tmp_path / "orders"))
    commit(cfg.root)
    assert de.default_base_image(client, engine, "3.12") == base  # chosen for runtime python3.12
    result = build_lambda(cfg, engine)
    image = client.images.get(result.images[0].image_id)
    env = dict(e.split("=", 1) for e in image.attrs["Config"]["Env"])
    assert env["STAGEFLOW_HANDLER"] == "orders.api.run"
    answer = run_handler(client, image.id, "orders.api.run")
    assert json.loads(answer["body"]) == {"python": "3.12", "path": "/health"}
    files = client.containers.run(
        image.id, ["-c", "ls /var/task"], entrypoint=["sh"], network_mode="none", remove=True
    )
    # what the zip ships at its top level (its default selection: no tests, no tooling), nothing else
    from stageflow.packaging.selection import Selection

    source = cfg.root / cfg.service.source
    sel = Selection(cfg.service.include, cfg.service.exclude)
    shipped = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    zip_top = sorted({rel.split("/")[0] for rel in shipped if sel.ships(rel)})
    assert "orders" in zip_top and "tests" not in zip_top
    assert files.decode().split() == zip_top


def test_a_base_image_with_another_python_than_the_runtime_fails_the_build_clearly(client, engine, tmp_path):
    cfg = load(fixture_service(tmp_path / "orders"))
    commit(cfg.root)
    with pytest.raises(Exception, match=r"has Python 3\.11; stageflow.toml's runtime asks for 3\.12"):
        db.build_for_env(
            cfg, "dev", state_dir=tmp_path / "state", reporter=Quiet(), registry_for=lambda _e: None,
            targets=("lambda",), push=False, engine=engine, base_image=de.default_base_image(client, engine),
        )  # fmt: skip
