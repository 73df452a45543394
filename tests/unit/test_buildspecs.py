"""buildspecs/*.yml: CodeBuild 0.2 structure, every nox session they call exists, and they agree with
the CodeBuild projects in infrastructure/modules/pipeline (one buildspec per project, the environment
variables the projects and pipeline actions pass, artifacts where the project takes them)."""

from __future__ import annotations

import importlib.util
import re

import nox
import pytest
import yaml

from tests.conftest import REPO
from tests.infrastructure.hcl import MODULES, attr, blocks, jsonencoded, load_dir

BUILDSPECS = REPO / "buildspecs"
NAMES = ("build", "deploy", "image", "integration", "rollback")
PHASES = ("install", "pre_build", "build", "post_build")
REPORT_FORMATS = {"JUNITXML", "COBERTURAXML"}
NOX_CALL = re.compile(r"\bnox\s+(?:-\S+\s+)*?-s\s+([\w-]+)")
# report files the nox sessions that run the service's suites write into reports/
WRITTEN_BY_SESSION = {
    "unit": ("junit-service-unit.xml", "coverage-service.xml"),
    "integration": ("junit-service-integration-*.xml",),
}
VAR_REF = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)(:[-+])?")


def _load(name: str) -> dict:
    return yaml.safe_load((BUILDSPECS / f"{name}.yml").read_text(encoding="utf-8"))


def _commands(spec: dict) -> list[str]:
    return [c for phase in spec["phases"].values() for c in phase.get("commands", [])]


def _exec_noxfile() -> set[str]:
    return set(_noxfile_sessions())


def _noxfile_sessions() -> dict:
    """Load noxfile.py the way nox does; return the sessions it registers. nox's registry is global:
    it is emptied first and restored after, so loading twice neither warns nor leaks."""
    saved = nox.registry.get()
    nox.registry.reset()
    try:
        spec = importlib.util.spec_from_file_location("stageflow_noxfile", REPO / "noxfile.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        return nox.registry.get()
    finally:
        nox.registry.reset()
        nox.registry._REGISTRY.update(saved)  # no public setter; get() returns a copy


@pytest.fixture(scope="module")
def sessions() -> set[str]:
    return _exec_noxfile()


@pytest.fixture(scope="module")
def pipeline():
    return load_dir(MODULES / "pipeline")


def test_one_buildspec_per_codebuild_project(pipeline):
    projects = set(pipeline.locals["pipeline_projects"]) | {"rollback", "image"}
    assert pipeline.resource("aws_codebuild_project", "rollback")
    assert attr(blocks(pipeline.resource("aws_codebuild_project", "image"), "source")[0], "buildspec") == (
        "buildspecs/image.yml"
    )
    assert projects == set(NAMES)
    assert {p.stem for p in BUILDSPECS.glob("*.yml")} == set(NAMES)
    # the pull-request project runs the Build stage's buildspec: the same checks on every pull request
    pr = pipeline.resource("aws_codebuild_project", "pull_request")
    assert attr(blocks(pr, "source")[0], "buildspec") == "buildspecs/build.yml"


@pytest.mark.parametrize("name", NAMES)
def test_structure(name):
    spec = _load(name)
    assert spec["version"] == 0.2
    assert set(spec["phases"]) <= set(PHASES) and "build" in spec["phases"]
    install = spec["phases"]["install"]
    assert install["runtime-versions"] == {"python": 3.11}
    assert any(re.search(r"pip install \"?nox", c) for c in install["commands"])
    for phase in spec["phases"].values():
        assert phase["commands"] and all(isinstance(c, str) and c.strip() for c in phase["commands"])
    assert spec["env"]["shell"] == "bash"
    variables = spec["env"]["variables"]
    assert all(isinstance(v, str) for v in variables.values()), "CodeBuild variables are strings"
    # nox's virtualenvs live in a fixed, cached place: the source path changes every build
    cache = spec["cache"]["paths"]
    assert variables["NOX_ENVDIR"] and f"{variables['NOX_ENVDIR']}/**/*" in cache
    assert any(p.startswith("/root/.cache/pip") for p in cache)


@pytest.mark.parametrize("name", NAMES)
def test_reports_are_junit_or_cobertura(name):
    spec = _load(name)
    reports = spec.get("reports", {})
    formats = {r["file-format"] for r in reports.values()}
    if name == "build":  # unit tests with coverage (the service's and stageflow's)
        assert formats == REPORT_FORMATS, formats
    if name == "integration":  # the service's integration suite against the deployed environment
        assert formats == {"JUNITXML"}, formats
    text = " ".join(_commands(spec))
    called = {s for c in _commands(spec) for s in NOX_CALL.findall(c)}
    written = {f for s in called for f in WRITTEN_BY_SESSION.get(s, ())}
    for group in reports.values():
        assert group["file-format"] in REPORT_FORMATS
        assert group["base-directory"] == "reports" and group["files"]
        for f in group["files"]:  # each report file is written by a command or a session of this buildspec
            assert f in written or f"reports/{f}" in text, f"{name}: nothing writes reports/{f}"


def test_report_files_are_what_stageflow_writes():
    """The service's suites write fixed names (checks/suite.py); the buildspecs publish those."""
    from stageflow.checks import suite

    assert WRITTEN_BY_SESSION["unit"] == (suite.UNIT_JUNIT, suite.UNIT_COVERAGE)
    assert WRITTEN_BY_SESSION["integration"] == (suite.INTEGRATION_JUNIT.format(env="*"),)
    build = {f for g in _load("build")["reports"].values() for f in g["files"]}
    assert set(WRITTEN_BY_SESSION["unit"]) <= build
    integration = {f for g in _load("integration")["reports"].values() for f in g["files"]}
    assert integration == set(WRITTEN_BY_SESSION["integration"])


@pytest.mark.parametrize("name", NAMES)
def test_every_nox_session_called_exists(name, sessions):
    called = {s for c in _commands(_load(name)) for s in NOX_CALL.findall(c)}
    assert called, f"{name} calls no nox session"
    assert called <= sessions, f"{name} calls sessions noxfile.py lacks: {sorted(called - sessions)}"


def test_the_issue_sessions_are_called(sessions):
    called = {s for n in NAMES for c in _commands(_load(n)) for s in NOX_CALL.findall(c)}
    assert {"lint", "unit", "tool_tests", "security", "image", "package", "deploy", "rollback"} <= called
    assert {"smoke", "integration", "load"} <= called
    # the service's suites, not stageflow's own integration tests, run against deployed environments
    integration = "\n".join(_commands(_load("integration")))
    assert "tests/e2e" not in integration and "tool_integration" not in integration
    assert 'nox -s integration -- "$STAGEFLOW_ENV"' in integration
    assert 'nox -s load -- "$STAGEFLOW_ENV"' in integration
    # smoke right after production's promotion (step 3)
    assert re.search(
        r'3\)\s+(\w+="[^"]*"\s+)?nox -s approve -- "\$STAGEFLOW_ENV" && nox -s smoke',
        "\n".join(_commands(_load("deploy"))),
    )
    deploy = " ".join(_commands(_load("deploy")))
    assert 'nox -s deploy -- "$STAGEFLOW_ENV"' in deploy
    assert 'nox -s rollback -- "$STAGEFLOW_ENV"' in " ".join(_commands(_load("rollback")))


def _provided(pipeline) -> dict[str, set[str]]:
    """Environment variables each project gets: its own environment_variable blocks, plus what the
    pipeline actions that start it pass."""
    out: dict[str, set[str]] = {}
    pipe = pipeline.resource("aws_codebuild_project", "pipeline")
    for key in pipeline.locals["pipeline_projects"]:
        out[key] = _env_block_names(pipe)
    out["rollback"] = _env_block_names(pipeline.resource("aws_codebuild_project", "rollback"))
    out["image"] = _env_block_names(pipeline.resource("aws_codebuild_project", "image"))
    for stage in blocks(pipeline.resource("aws_codepipeline", "this"), "stage"):
        for action in blocks(stage, "action"):
            cfg = attr(action, "configuration")
            m = re.search(r'pipeline\["(\w+)"\]', str(attr(cfg, "ProjectName", "")))
            ref = re.fullmatch(r"\$\{local\.env_vars\.(\w+)\}", str(attr(cfg, "EnvironmentVariables", "")))
            if m and ref:
                out[m.group(1)] |= {v["name"] for v in jsonencoded(pipeline.locals["env_vars"][ref.group(1)])}
    return out


def _env_block_names(project: dict) -> set[str]:
    envs = blocks(project, "environment")
    names = {attr(v, "name") for e in envs for v in blocks(e, "environment_variable")}
    # dynamic "environment_variable" blocks (the image project's repository, the Slack webhook secret)
    dynamic = [
        d["environment_variable"] for e in envs for d in e.get("dynamic", []) if "environment_variable" in d
    ]
    return names | {attr(c, "name") for d in dynamic for c in blocks(d, "content")}


@pytest.mark.parametrize("name", NAMES)
def test_variables_used_are_provided(name, pipeline):
    """Every $VAR a buildspec reads comes from the project, the pipeline action, the buildspec itself
    or CodeBuild (CODEBUILD_*), or has a default (${VAR:-x}, ${VAR:+x})."""
    spec = _load(name)
    provided = _provided(pipeline)[name] | set(spec["env"]["variables"])
    text = "\n".join(_commands(spec)) + "\n" + yaml.safe_dump(spec.get("artifacts", {}))
    refs = VAR_REF.findall(text)
    defaulted = {var for var, default in refs if default}
    missing = {var for var, _ in refs if var not in provided | defaulted and not var.startswith("CODEBUILD_")}
    assert not missing, f"{name}.yml reads variables no project or action sets: {sorted(missing)}"


def test_deploy_and_integration_read_the_pipeline_variables(pipeline):
    provided = _provided(pipeline)
    assert {"STAGEFLOW_ENV", "STAGEFLOW_CANARY_STEP"} <= provided["deploy"]
    assert {"STAGEFLOW_ENV", "STAGEFLOW_SUITE"} <= provided["integration"]
    assert "STAGEFLOW_ENV" in provided["rollback"]
    deploy = "\n".join(_commands(_load("deploy")))
    labels = {w for label in re.findall(r"(?m)^\s*([\w|]+)\)", deploy) for w in label.split("|")}
    assert "STAGEFLOW_CANARY_STEP" in deploy and {"all", "1", "2", "3"} <= labels
    integration = "\n".join(_commands(_load("integration")))
    labels = {w for label in re.findall(r"(?m)^\s*([\w|]+)\)", integration) for w in label.split("|")}
    assert "STAGEFLOW_SUITE" in integration and {"integration", "full", "chaos"} <= labels


@pytest.mark.parametrize("name", NAMES)
def test_artifacts_only_where_the_project_takes_them(name, pipeline):
    spec = _load(name)
    if name in ("rollback", "image"):
        project = pipeline.resource("aws_codebuild_project", name)
    else:
        project = pipeline.resource("aws_codebuild_project", "pipeline")
    kind = attr(blocks(project, "artifacts")[0], "type")
    if kind == "NO_ARTIFACTS":
        assert "artifacts" not in spec
    elif name == "build":  # the reports and the build artifact every deploy action deploys
        assert spec["artifacts"]["files"] == ["reports/**/*", "artifacts/**/*"]
    elif name == "image":  # the pushed image's digest for the build artifact's manifest
        assert spec["artifacts"]["files"] == ["image/image.json", "reports/**/*"]
    else:
        assert spec["artifacts"]["files"] == ["reports/**/*"]


def test_codebuild_never_falls_back_to_local_mode():
    for name in ("deploy", "integration", "rollback"):
        assert _load(name)["env"]["variables"]["STAGEFLOW_LOCAL"] == "0", name


def test_nox_envdir_setting_is_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("NOX_ENVDIR", str(tmp_path / "envs"))
    before = nox.options.envdir
    try:
        _exec_noxfile()
        assert nox.options.envdir == str(tmp_path / "envs")
    finally:
        nox.options.envdir = before


@pytest.mark.parametrize("name", NAMES)
def test_commands_are_valid_bash(name):
    import subprocess

    for command in _commands(_load(name)):
        out = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"{name}: {command!r}: {out.stderr}"


def test_noxfile_defines_each_session_once():
    """nox only warns when a later definition silently replaces an earlier one (e.g. after a merge)."""
    import ast
    from collections import Counter

    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    names = Counter(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("nox.session" in ast.unparse(d) for d in node.decorator_list)
    )
    assert [n for n, c in names.items() if c > 1] == []


class _RecordingSession:
    """What a nox session body asks of nox: installs and commands, recorded."""

    def __init__(self, name: str, posargs: list[str]):
        self.name, self.posargs, self.calls = name, posargs, []

    def install(self, *args, **kwargs):
        self.calls.append(("install", *args))

    def run(self, *args, **kwargs):
        self.calls.append(("run", *args))

    def error(self, message):
        raise AssertionError(message)


def test_nox_unit_is_stageflow_unit_so_it_uses_the_services_own_test_environment():
    """``nox -s unit`` installs stageflow only and hands over to ``stageflow unit``, which builds (or
    reuses) the service's test environment from its own files — the pipeline's unit stage exactly."""
    session = _RecordingSession("unit", ["--floor", "85"])
    _noxfile_sessions()["unit"](session)
    assert session.calls == [("install", "-e", ".[dev]"), ("run", "stageflow", "unit", "--floor", "85")]


# -- build once, deploy many; images; notifications (issue 25 items 3, 4, 6) ---------------------------
def test_build_writes_the_artifact_once_with_the_images_digest():
    build = "\n".join(_commands(_load("build")))
    assert "nox -s package -- --out artifacts" in build
    assert "CODEBUILD_SRC_DIR_image" in build and "STAGEFLOW_IMAGE_DIGEST" in build
    assert "nox -s docker" not in build  # the image is the image project's (privileged) job


def test_every_deploy_deploys_the_build_artifact_and_never_rebuilds():
    spec = _load("deploy")
    deploy = "\n".join(_commands(spec))
    assert 'export STAGEFLOW_ARTIFACTS="$CODEBUILD_SRC_DIR_build/artifacts"' in deploy
    assert "manifest.json" in "\n".join(spec["phases"]["pre_build"]["commands"])
    assert not {"package", "docker", "image"} & set(NOX_CALL.findall(deploy))
    # the option the variable feeds: `stageflow deploy --artifacts` (click envvar)
    from stageflow.cli import cli

    opt = next(p for p in cli.commands["deploy"].params if p.name == "artifacts")
    assert opt.envvar == "STAGEFLOW_ARTIFACTS"


def test_the_image_project_builds_scans_and_writes_the_digest():
    spec = _load("image")
    assert NOX_CALL.findall("\n".join(_commands(spec))) == ["image"]
    assert "image/image.json" in spec["artifacts"]["files"]
    text = (REPO / "noxfile.py").read_text(encoding="utf-8")
    src = text[text.index("def image(") : text.index("\n@nox.session", text.index("def image("))]
    assert '"--target", "lambda"' in src and "--require-image-scan" in src and "--download-db-only" in src


def test_rollback_runs_smoke_after_the_rollback():
    cmds = _commands(_load("rollback"))
    rb = next(i for i, c in enumerate(cmds) if 'nox -s rollback -- "$STAGEFLOW_ENV"' in c)
    smoke = next(i for i, c in enumerate(cmds) if 'nox -s smoke -- "$STAGEFLOW_ENV"' in c)
    assert smoke > rb
