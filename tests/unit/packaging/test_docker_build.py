"""Tags, labels, stage tracking, registry resolution and the no-engine error, without a Docker engine."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from stageflow.errors import EnvironmentFailure, ExitCode, LocalGuardError, UsageError
from stageflow.packaging import docker_build as db
from stageflow.packaging import docker_engine as de
from stageflow.packaging import images as im
from stageflow.redact import REDACTOR
from tests.conftest import REPO

SHA = "0123456789abcdef0123456789abcdef01234567"
GIT = im.GitInfo(sha=SHA, version="v1.2.0-3-g0123456", created="2026-01-02T03:04:05Z")


def test_runtime_is_tagged_by_sha_and_describe():
    assert im.image_tags("sample-api", "runtime", GIT) == (
        f"sample-api:{SHA}",
        "sample-api:v1.2.0-3-g0123456",
    )


def test_other_targets_get_a_suffix_and_registry_prefix():
    assert im.image_tags("127.0.0.1:5000/sample-api", "lambda", GIT) == (
        f"127.0.0.1:5000/sample-api:{SHA}-lambda",
        "127.0.0.1:5000/sample-api:v1.2.0-3-g0123456-lambda",
    )


def test_describe_equal_to_sha_gives_one_tag_and_bad_characters_are_replaced():
    same = im.GitInfo(sha="abc1234", version="abc1234", created="x")
    assert im.image_tags("svc", "runtime", same) == ("svc:abc1234",)
    assert im.sanitize_tag("release/1.0+build") == "release-1.0-build"
    assert im.sanitize_tag(".hidden") == "hidden"
    assert len(im.sanitize_tag("x" * 300)) == 128


def test_labels_and_build_args():
    assert im.oci_labels(GIT) == {
        "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.version": "v1.2.0-3-g0123456",
    }
    args = im.build_args(GIT, None, "app")
    assert args == {"BUILD_DATE": GIT.created, "VCS_REF": SHA, "VERSION": GIT.version, "APP_DIR": "app"}
    assert im.build_args(GIT, "stageflow-base:bookworm", "app")["BASE_IMAGE"] == "stageflow-base:bookworm"


def test_split_tag_keeps_registry_port():
    assert im.split_tag("127.0.0.1:5000/svc:v1") == ("127.0.0.1:5000/svc", "v1")
    assert im.split_tag("127.0.0.1:5000/svc") == ("127.0.0.1:5000/svc", "latest")
    assert im.split_tag("svc:abc") == ("svc", "abc")


def test_stage_follows_from_lines():
    stage = "base"
    for line in ["Step 1/33 : ARG BASE_IMAGE=x", "Step 2/33 : FROM ${BASE_IMAGE} AS base"]:
        stage = im.stage_of(line, stage)
    assert stage == "base"
    stage = im.stage_of("Step 11/33 : FROM builder AS test", stage)
    assert stage == "test"
    assert im.stage_of(" ---> Running in 1234", stage) == "test"
    assert im.stage_of("Step 18/33 : from base as runtime", stage) == "runtime"


def test_git_info_reads_sha_describe_and_commit_time(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    env_args = ["-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(
        ["git", "-C", str(tmp_path), *env_args, "commit", "-qm", "c", "--date=2026-01-02T03:04:05Z"],
        check=True,
        capture_output=True,
        env={"GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z", "PATH": "/usr/bin:/bin"},
    )
    git("tag", "v0.9.0")
    info = im.git_info(tmp_path)
    assert len(info.sha) == 40
    assert info.version == "v0.9.0"
    assert info.created == "2026-01-02T03:04:05Z"


def test_git_info_outside_a_repository_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as exc:
        im.git_info(tmp_path)
    assert exc.value.exit_code == ExitCode.USAGE
    assert "git checkout" in exc.value.one_line()


def test_engine_info_reads_the_record_and_env_overrides(tmp_path):
    (tmp_path / "engine.json").write_text(
        json.dumps(
            {
                "docker_host": "unix:///x/docker.sock",
                "registry": "127.0.0.1:5999",
                "base_image": "stageflow-base:bookworm",
            }
        )
    )
    info = de.engine_info({"STAGEFLOW_DOCKER_DIR": str(tmp_path)})
    assert info == de.EngineInfo("unix:///x/docker.sock", "127.0.0.1:5999", "stageflow-base:bookworm")
    info = de.engine_info({"STAGEFLOW_DOCKER_DIR": str(tmp_path), "STAGEFLOW_REGISTRY": "127.0.0.1:1"})
    assert info.registry == "127.0.0.1:1"
    assert de.engine_info({"STAGEFLOW_DOCKER_DIR": str(tmp_path / "none")}) == de.EngineInfo()


def test_no_engine_is_exit_3_with_the_hint(tmp_path):
    engine = de.EngineInfo(docker_host=f"unix://{tmp_path}/no.sock")
    with pytest.raises(de.DockerEngineUnavailable) as exc:
        de.docker_client(engine, timeout=2)
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "scripts/docker-engine.sh up" in exc.value.one_line()


def test_cli_without_engine_exits_3_with_one_line(cli, project, tmp_path):
    res = cli(
        "--local",
        "build",
        "dev",
        "--no-push",
        cwd=project,
        env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock", "STAGEFLOW_DOCKER_DIR": str(tmp_path)},
    )
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("stageflow: error: no Docker engine: cannot reach unix://")
    assert lines[-1].endswith("(start one with scripts/docker-engine.sh up)")


def test_cli_unknown_environment_exits_2_before_touching_docker(cli, project, tmp_path):
    res = cli("--local", "build", "nope", cwd=project, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert res.returncode == 2
    assert "unknown environment 'nope'" in res.stderr


def test_cli_unknown_target_exits_2(cli, project):
    res = cli("--local", "build", "dev", "--target", "nope", cwd=project)
    assert res.returncode == 2
    assert res.stderr.startswith("stageflow: error:")


# -- registries --------------------------------------------------------------------------------------
def test_local_mode_needs_a_local_registry():
    with pytest.raises(EnvironmentFailure) as exc:
        de.resolve_registry(None, local=True, engine=de.EngineInfo())
    assert "scripts/docker-engine.sh up" in exc.value.one_line()
    got = de.resolve_registry(None, local=True, engine=de.EngineInfo(registry="127.0.0.1:5000"))
    assert got == de.RegistryTarget("127.0.0.1:5000", None, "local")
    assert de.resolve_registry("localhost:5001", local=True, engine=de.EngineInfo()).host == "localhost:5001"


def test_local_mode_refuses_a_remote_registry():
    with pytest.raises(LocalGuardError):
        de.resolve_registry("registry.example.invalid", local=True, engine=de.EngineInfo())


def test_ecr_login_from_get_authorization_token_and_password_is_redacted():
    ecr = boto3.client(
        "ecr", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    token = base64.b64encode(b"AWS:ecr-password-value-123").decode()
    with Stubber(ecr) as stub:
        stub.add_response(
            "get_authorization_token",
            {
                "authorizationData": [
                    {
                        "authorizationToken": token,
                        "proxyEndpoint": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
                    }
                ]
            },
            {},
        )
        target = de.resolve_registry(None, local=False, engine=de.EngineInfo(), ecr_client=lambda: ecr)
    assert target.kind == "ecr"
    assert target.host == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert target.auth["username"] == "AWS"
    assert target.auth["password"] == "ecr-password-value-123"
    assert "ecr-password-value-123" not in repr(target)
    assert REDACTOR.redact("login ecr-password-value-123") == "login ***"


def test_ecr_failure_is_exit_3():
    ecr = boto3.client(
        "ecr", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(ecr) as stub:
        stub.add_client_error("get_authorization_token", "AccessDeniedException", "no")
        with pytest.raises(EnvironmentFailure) as exc:
            de.resolve_registry(None, local=False, engine=de.EngineInfo(), ecr_client=lambda: ecr)
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "ECR login token" in exc.value.one_line()


# -- the build stream, through a fake low-level API ---------------------------------------------------
class FakeApi:
    def __init__(self, build_chunks=(), push_chunks=()):
        self.build_chunks = list(build_chunks)
        self.push_chunks = list(push_chunks)
        self.build_kwargs = None

    def build(self, **kwargs):
        self.build_kwargs = kwargs
        return iter(self.build_chunks)

    def push(self, repo, **kwargs):
        return iter(self.push_chunks)


class FakeClient:
    def __init__(self, api):
        self.api = api


def _options(tmp_path):
    return im.BuildOptions(root=tmp_path, service="svc", targets=("runtime",), base_image="b:1")


def test_failing_test_stage_names_the_stage(tmp_path):
    api = FakeApi(
        [
            {"stream": "Step 2/33 : FROM ${BASE_IMAGE} AS base\n"},
            {"stream": "Step 11/33 : FROM builder "},  # a line split across chunks
            {"stream": "AS test\n ---> abc\n"},
            {"stream": "Step 17/33 : RUN python -m pytest -q tests\n"},
            {"stream": "1 failed, 3 passed\n"},
            {"error": "The command '/bin/sh -c python -m pytest' returned a non-zero code: 1"},
        ]
    )
    lines: list[str] = []
    with pytest.raises(db.DockerBuildFailed) as exc:
        db.build_target(FakeClient(api), _options(tmp_path), "runtime", GIT, b"", lines.append)
    err = exc.value
    assert err.stage == "test"
    assert err.exit_code == ExitCode.ENVIRONMENT
    assert err.one_line().startswith("docker build failed in stage 'test' (target runtime): the app's unit")
    assert "unit tests failed: 1 failed, 3 passed (1)" in err.one_line()  # what the step said, its code
    assert "Step 11/33 : FROM builder AS test" in lines
    assert "1 failed, 3 passed" in lines
    assert api.build_kwargs["network_mode"] == "host"
    assert api.build_kwargs["target"] == "runtime"
    assert api.build_kwargs["buildargs"]["BASE_IMAGE"] == "b:1"
    assert api.build_kwargs["pull"] is False


def test_build_returns_the_image_id(tmp_path):
    api = FakeApi([{"stream": "Step 1/1 : FROM x AS runtime\n"}, {"aux": {"ID": "sha256:feed"}}])
    assert db.build_target(FakeClient(api), _options(tmp_path), "runtime", GIT, b"", lambda _: None) == (
        "sha256:feed"
    )


def test_push_error_and_digest():
    bad = FakeApi(push_chunks=[{"status": "Preparing"}, {"error": "denied: requested access"}])
    with pytest.raises(db.DockerPushFailed) as exc:
        db.push_tag(FakeClient(bad), "127.0.0.1:5000/svc:v1", None, lambda _: None)
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    ok = FakeApi(push_chunks=[{"status": "v1: digest"}, {"aux": {"Tag": "v1", "Digest": "sha256:ab"}}])
    assert db.push_tag(FakeClient(ok), "127.0.0.1:5000/svc:v1", None, lambda _: None) == "sha256:ab"


def test_unknown_target_is_a_usage_error(tmp_path):
    opts = im.BuildOptions(root=tmp_path, service="svc", targets=("nope",))
    with pytest.raises(UsageError):
        db.build_images(None, opts, de.RegistryTarget(None), git=GIT)


def test_context_is_the_dockerignore_allowlist(tmp_path):
    import io
    import tarfile

    from tests.conftest import REPO

    with tarfile.open(fileobj=io.BytesIO(db.build_context(REPO, im.DEFAULT_DOCKERFILE))) as tar:
        names = set(tar.getnames())
    assert "docker/Dockerfile" in names
    assert "app/service/handler.py" in names
    assert not any(n.startswith(("src/", ".venv", "tests/", ".git")) for n in names)
    assert not any("__pycache__" in n for n in names)


def test_result_json_and_digest():
    img = im.BuiltImage("runtime", "sha256:1", ("svc:a",), ("127.0.0.1:5000/svc@sha256:d",), 10)
    res = im.BuildResult("svc", SHA, "v1", "t", "127.0.0.1:5000", True, (img,), 1.25)
    assert res.digest == "sha256:d"
    assert res.to_json()["images"][0]["digest"] == "sha256:d"
    assert res.image("runtime") is img
    with pytest.raises(KeyError):
        res.image("lambda")


# -- an unchanged build is not rebuilt ------------------------------------------------------------------
class FakeImages:
    def __init__(self, present=(), registry=None):
        self.present = set(present)
        self.registry = dict(registry or {})  # repo@digest -> digest the registry answers
        self.asked: list[str] = []

    def get(self, image_id):
        from docker.errors import ImageNotFound

        if image_id not in self.present:
            raise ImageNotFound(f"no such image: {image_id}")
        return image_id

    def get_registry_data(self, ref, auth_config=None):
        from docker.errors import NotFound

        self.asked.append(ref)
        if ref not in self.registry:
            raise NotFound(f"manifest unknown: {ref}")
        return type("RegistryData", (), {"id": self.registry[ref]})()


def _recorded(tmp_path, key):
    img = im.BuiltImage("runtime", "sha256:img1", ("svc:a",), ("127.0.0.1:5000/svc@sha256:d1",), 10)
    res = im.BuildResult("svc", SHA, "v1", "t", "127.0.0.1:5000", True, (img,), 9.0, build_key=key)
    db.record_build(tmp_path, "dev", res)
    return res


def test_build_key_changes_with_context_commit_targets_and_registry(tmp_path):
    opts = _options(tmp_path)
    key = im.build_key(opts, GIT, "127.0.0.1:5000", b"context")
    assert key == im.build_key(opts, GIT, "127.0.0.1:5000", b"context") and key.startswith("sha256:")
    other_git = im.GitInfo(sha="f" * 40, version=GIT.version, created=GIT.created)
    assert (
        len(
            {
                key,
                im.build_key(opts, GIT, "127.0.0.1:5000", b"context + one changed file"),
                im.build_key(opts, other_git, "127.0.0.1:5000", b"context"),
                im.build_key(opts, GIT, "127.0.0.1:5001", b"context"),
                im.build_key(
                    im.BuildOptions(root=tmp_path, service="svc"), GIT, "127.0.0.1:5000", b"context"
                ),
            }
        )
        == 5
    )


def test_recorded_build_is_reused_only_when_key_image_and_pushed_digest_all_match(tmp_path):
    reg = de.RegistryTarget("127.0.0.1:5000")
    res = _recorded(tmp_path, "sha256:k")
    here = FakeImages({"sha256:img1"}, {"127.0.0.1:5000/svc@sha256:d1": "sha256:d1"})
    again = db.reusable_build(_client(here), tmp_path, "dev", "sha256:k", reg)
    assert again is not None and again.images == res.images and again.build_key == "sha256:k"
    assert here.asked == ["127.0.0.1:5000/svc@sha256:d1"]
    assert db.reusable_build(_client(here), tmp_path, "dev", "sha256:other", reg) is None  # inputs changed
    gone = FakeImages(set(), {"127.0.0.1:5000/svc@sha256:d1": "sha256:d1"})
    assert db.reusable_build(_client(gone), tmp_path, "dev", "sha256:k", reg) is None  # image removed
    wiped = FakeImages({"sha256:img1"}, {})
    assert db.reusable_build(_client(wiped), tmp_path, "dev", "sha256:k", reg) is None  # registry wiped
    assert db.reusable_build(_client(here), tmp_path, "prod", "sha256:k", reg) is None  # no record
    (tmp_path / "builds" / "docker-dev.json").write_text("{broken")
    assert db.reusable_build(_client(here), tmp_path, "dev", "sha256:k", reg) is None


def _client(images):
    return type("Client", (), {"images": images})()


def test_python_version_and_handler_come_from_stageflow_toml():
    """The Dockerfile's PYTHON_VERSION and HANDLER build args are [service] runtime and handler."""
    opts = im.BuildOptions(
        root=Path("."),
        service="svc",
        python_version=im.python_version_of("python3.12"),
        handler="api.main.run",
    )
    args = im.options_build_args(opts, GIT)
    assert (args["PYTHON_VERSION"], args["HANDLER"]) == ("3.12", "api.main.run")
    other = im.BuildOptions(root=Path("."), service="svc", python_version="3.11", handler="api.main.run")
    assert im.build_key(opts, GIT, None, b"ctx") != im.build_key(other, GIT, None, b"ctx")  # a rebuild
    with pytest.raises(UsageError):
        im.python_version_of("nodejs20.x")
    dockerfile = (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim" in dockerfile
    assert 'CMD ["service.handler.handler"]' not in dockerfile and "$STAGEFLOW_HANDLER" in dockerfile


def test_the_images_code_stage_leaves_out_what_the_zip_leaves_out():
    """The image ships what the zip ships by default: the Dockerfile's code stage excludes exactly the
    selection's default directories (a helper at the source root, like stageflow_secrets.py, ships)."""
    from stageflow.packaging.selection import ANY_DEPTH_DIRS, EXCLUDE_SUFFIXES, TOP_DIRS

    dockerfile = (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    stage = dockerfile[dockerfile.index("FROM base AS code") : dockerfile.index("FROM base AS builder")]
    top = set(re.findall(r"--exclude=\./([\w.]+)", stage))
    anywhere = set(re.findall(r"--exclude=(\w+)\b(?!/)", stage))
    suffixes = set(re.findall(r"--exclude='\*(\.\w+)'", stage))
    assert top == set(TOP_DIRS) and anywhere == set(ANY_DEPTH_DIRS) and suffixes == set(EXCLUDE_SUFFIXES)
