"""`stageflow deploy ENV`: the service's lint and unit tests → build → security gate → image →
infrastructure (Terraform) → secrets → canary (which records and notifies) → smoke → the service's
integration and load tests (checks/), as a chain of plain functions.

Each stage takes the frozen results of the stages before it and returns its own: outputs are resolved
once (by the infrastructure stage, from the Terraform it applied), secrets once (read at their current
versions; their pinned references go into the function's environment; Terraform never sees a value).
Each stage prints one summary line with its duration; a failure names its stage and ends with the
stage error's exit code. The same chain runs in every mode: the target (AWS or the emulator) was
chosen by the composition root, which builds the services the stages use (:class:`DeployServices`):
the Terraform service, the outputs store, the secret store, the image builder and the service checks
(:mod:`stageflow.services`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from stageflow.errors import StageflowError
from stageflow.function_config import SecretsResult

if TYPE_CHECKING:
    from stageflow.config import Config, EnvironmentConfig
    from stageflow.deploy.canary import Context
    from stageflow.function_config import FunctionSpec
    from stageflow.outputs_store import OutputsStore
    from stageflow.report import Reporter
    from stageflow.services import DeployServices, ImageBuilder, SecretStore
    from stageflow.terraform.api import TerraformService

R = TypeVar("R")


@dataclass(frozen=True)
class StageRecord:
    """What a stage reported: printed, and kept in the deployment record."""

    name: str
    ok: bool
    seconds: float
    summary: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PipelineRun:
    environment: str
    stages: list[StageRecord] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "environment": self.environment,
            "stages": [
                {
                    "name": s.name,
                    "ok": s.ok,
                    "seconds": round(s.seconds, 3),
                    "summary": s.summary,
                    **({"data": dict(s.data)} if s.data else {}),
                }
                for s in self.stages
            ],
        }


# -- the stages' results ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildResult:
    packages: Any  # lambda_zip.Packages: the service zip and the rollback zip the roots deploy

    @property
    def artifact(self):
        """The service package the canary publishes."""
        return self.packages.service

    @property
    def summary(self) -> str:
        pk, art = self.packages, self.packages.service
        deps = f", {pk.dependencies} from requirements" if pk.dependencies else ""
        checked = f" ({pk.checked})" if pk.checked else ""
        return (
            f"lambda zip {art.files} files{deps}, {len(art.data)} bytes, {art.digest[:19]}…{checked}; "
            f"rollback zip {pk.rollback.digest[:19]}…"
        )

    def to_json(self) -> dict:
        return {"digest": self.artifact.digest, "packages": self.packages.to_json()}


@dataclass(frozen=True)
class ImageResult:
    build: Any | None  # docker_build.BuildResult, None when skipped
    skipped: str | None = None

    @property
    def summary(self) -> str:
        if self.build is None:
            return f"skipped: {self.skipped}"
        b = self.build
        if not b.images:  # deployed from the build artifact: the image its manifest names
            return f"image from the build artifact: {getattr(b, 'uri', None) or b.digest}"
        where = next((d for img in b.images for d in img.repo_digests), None) or b.digest
        # reused: the same inputs as the recorded build, its images still in engine and registry
        verb = "unchanged" if getattr(b, "reused", False) else "pushed"
        return f"images {', '.join(i.target for i in b.images)} {verb}: {where}"

    def to_json(self) -> dict:
        return {"skipped": True} if self.build is None else self.build.to_json()

    def record(self) -> dict | None:
        if self.build is None:
            return None
        b = self.build
        return {
            "digest": b.digest,
            "revision": b.revision,
            "version": b.version,
            "images": [
                {"target": i.target, "tags": list(i.tags), "repo_digests": list(i.repo_digests)}
                for i in b.images
            ],
        }


@dataclass(frozen=True)
class SecurityResult:
    report: Mapping[str, Any]

    @property
    def summary(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in self.report["scanners"].items())
        return f"passed ({statuses})"

    def to_json(self) -> dict:
        return dict(self.report)


@dataclass(frozen=True)
class InfraResult:
    outputs: Any  # DeployOutputs
    plan_sha256: str
    applied: bool
    headline: str
    secrets: Mapping[str, str]  # name -> pinned reference (never a value), read once for the whole run
    plan: Any = None  # terraform.models.PlanResult
    apply: Any = None  # terraform.models.ApplyResult
    # what restores this release's infrastructure besides its commit and plan hash (the deployment
    # record's ``extra.release``): the inputs' digest (terraform/inputs.py) and the secret references
    # pinned to the versions this deploy read (never a value)
    release: Mapping[str, Any] | None = None

    @property
    def summary(self) -> str:
        what = self.headline if self.applied else "no changes"
        return f"terraform: {what}; {self.outputs.function_name}:{self.outputs.alias_name}"

    def to_json(self) -> dict:
        return {"plan_sha256": self.plan_sha256, "applied": self.applied, **self.outputs.to_json()}


@dataclass(frozen=True)
class CanaryResult:
    start: Any  # canary.StartResult
    environment: str

    @property
    def summary(self) -> str:
        res = self.start
        if res.outcome is None:
            return f"nothing to deploy: {res.published.reason}"
        o = res.outcome
        if o.paused:
            return (
                f"v{o.deployment.version} awaits approval at {o.state.weight}%: stageflow approve "
                f"{self.environment}"
            )
        return f"v{o.deployment.version} {o.state.phase} (was v{o.deployment.previous_version})"

    @property
    def paused(self) -> bool:
        """Awaiting an approval (production between steps): the post-deploy checks wait for promotion."""
        return self.start.outcome is not None and bool(self.start.outcome.paused)

    def to_json(self) -> dict:
        res = self.start
        if res.outcome is None:
            return {"version": res.published.previous_version, "published": False}
        d = res.outcome.deployment
        return {"deployment_id": d.deployment_id, "version": d.version, "published": True}


# -- running a stage ----------------------------------------------------------------------------------
def run_stage(reporter: Reporter, run: PipelineRun, name: str, fn: Callable[[], R]) -> R:
    t0 = time.monotonic()
    try:
        result = fn()
    except StageflowError as exc:
        took = time.monotonic() - t0
        run.stages.append(StageRecord(name, False, took, exc.one_line()))
        reporter.info("stage", name, f"FAILED after {took:.1f} s")
        exc.message = f"stage {name} failed: {exc.message}"
        raise
    took = time.monotonic() - t0
    summary = result.summary
    run.stages.append(StageRecord(name, True, took, summary, result.to_json()))
    reporter.info("stage", name, f"{summary} ({took:.1f} s)")
    return result


# -- the stages --------------------------------------------------------------------------------------
def stage_build(package: Callable[[], Any]) -> BuildResult:
    """The packages Terraform deploys, in every mode: the service zip (requirements installed for the
    function's platform) — the artifact the canary publishes — and the rollback function's zip."""
    return BuildResult(package())


def docker_engine():
    """The Docker engine, reached (DockerEngineUnavailable when none answers within 10 s)."""
    from stageflow.packaging.docker_engine import docker_client, engine_info

    engine = engine_info()
    docker_client(engine, timeout=10)
    return engine


def stage_image(env_name: str, images: ImageBuilder) -> ImageResult:
    """The multi-stage Docker build (its `test` stage runs the unit tests), tagged and pushed, when an
    engine can be reached; skipped (and said so) when none runs."""
    from stageflow.packaging.docker_engine import DockerEngineUnavailable

    try:
        engine = images.engine()
    except DockerEngineUnavailable as exc:
        return ImageResult(None, f"no Docker engine ({exc.message}; start one: scripts/docker-engine.sh up)")
    built = images.build(env_name, engine)
    return built if isinstance(built, ImageResult) else ImageResult(built)  # an ImageResult: skipped


def stage_security(gate: Callable[[Any], Any], build: BuildResult | None = None) -> SecurityResult:
    """The security gate (bandit, checkov, detect-secrets, trivy where available, pip-audit as
    information, SBOM): its result goes into the deployment record; findings stop the pipeline (exit 7)."""
    # what the service ships: its requirement pins and the packaged zip's contents (service-deps)
    report = gate(build.artifact if build is not None else None)
    record = report.record()
    report.raise_for_status()
    return SecurityResult(record)


def stage_infrastructure(
    env: EnvironmentConfig,
    terraform: TerraformService,
    outputs: OutputsStore,
    secret_store: SecretStore,
    *,
    allow_destroy: bool = False,
    show=None,
) -> InfraResult:
    """Terraform, in every mode: plan (summary, protected-environment policy), apply exactly that plan,
    read the outputs, delete the plan file. Terraform never receives a secret: the secrets are read once
    here (registered with the redactor) and only their pinned references go on, to the secrets stage."""
    from stageflow.terraform.api import enforce_policy

    pins = secret_store.resolve_pinned(env.name)[1] if env.secrets else {}
    redact_deployed_secrets(outputs, secret_store, env, read_current=False)  # read just above
    planned = terraform.plan(env.name, allow_destroy=allow_destroy)
    try:
        if show is not None:
            show(planned)
        enforce_policy(planned)
        applied = terraform.apply(planned)
    finally:
        planned.plan_file.unlink(missing_ok=True)
    out = terraform.outputs_after(planned, applied)  # no changes: read from the plan itself
    outputs.remember(env.name, out)
    return InfraResult(
        out,
        planned.plan_sha256,
        applied.applied,
        planned.summary.headline(),
        pins,
        planned,
        applied,
        release_inputs(env, terraform, pins),
    )


def release_inputs(env: EnvironmentConfig, terraform: TerraformService, pins: Mapping[str, str]) -> dict:
    """``{"infra_digest", "secrets"}`` of the release being deployed (see :class:`InfraResult`): each
    secret as configured and pinned to the version this deploy read (never a value)."""
    secrets = [{"name": n, "ref": env.secrets.get(n), "pinned": pin} for n, pin in pins.items()]
    return {"infra_digest": terraform.inputs_digest(env.name), "secrets": secrets}


def redact_deployed_secrets(
    outputs: OutputsStore, secret_store: SecretStore, env: EnvironmentConfig, *, read_current: bool = True
) -> None:
    """Before Terraform runs: register with the redactor every value an older stageflow left in a
    function's environment under a secret's own name (Terraform's refresh reads the environment and
    prints what changed outside it), and the secrets' current values (best effort: a store that cannot
    be read here fails where it is needed). Every function of the environment; nothing deployed yet:
    nothing to register."""
    from botocore.exceptions import BotoCoreError, ClientError

    from stageflow.errors import StageflowError
    from stageflow.redact import REDACTOR

    if not env.secrets:
        return
    if read_current:
        with contextlib.suppress(StageflowError):
            secret_store.resolve(env.name)
    try:
        out = outputs.get(env.name, cached_only=True)
        if out is None:
            return
        for fn in out.functions:
            deployed = secret_store.function_environment(fn.function_name)
            for name, value in deployed.items():
                if name in env.secrets and value:
                    REDACTOR.add(value)
    except (BotoCoreError, ClientError):
        return


def stage_secrets(
    secret_store: SecretStore,
    infra: InfraResult,
    spec: FunctionSpec | Mapping[str, FunctionSpec] | None = None,
    *,
    say: Callable[[str], None] | None = None,
) -> SecretsResult:
    """Each function's environment as stageflow.toml says (the secrets' pinned references and the plain
    variables), so the versions the canary publishes carry it, and the live configuration compared with
    its spec (``spec``: one function's, or every function's by key): each difference is one line through
    ``say``, naming the function when there are several
    (:func:`stageflow.function_config.write_environments`). The root's ``function_environment`` output
    (the FIS extension's variables where the environment runs chaos) joins every spec's plain variables
    (Terraform's value wins over a same-named one of stageflow.toml)."""
    from stageflow.function_config import FunctionSpec, with_environment, write_environments

    specs = {} if spec is None else spec if not isinstance(spec, FunctionSpec) else {"": spec}
    specs = with_environment(specs, getattr(infra.outputs, "function_environment", None) or {})
    return write_environments(secret_store, infra.outputs.functions, infra.secrets, specs, say=say)


def stage_canary(
    start: Callable[..., Any],
    config: Config,
    ctx: Context,
    build: BuildResult,
    infra: InfraResult,
    *,
    run: PipelineRun,
    image: ImageResult | None = None,
    security: SecurityResult | None = None,
    scenario: Path | None = None,
    commit: str | None = None,
    pre_approved_by: str | None = None,
    emergency: Mapping[str, Any] | None = None,
) -> CanaryResult:
    """The canary (``start``: :func:`stageflow.deploy.canary.start`) on ``ctx``, the environment wired
    with the outputs Terraform just applied."""
    extra: dict[str, Any] = {
        "pipeline": [
            {"stage": s.name, "ok": s.ok, "seconds": round(s.seconds, 2), "summary": s.summary}
            for s in run.stages
        ]
    }
    if image is not None and image.record() is not None:
        extra["image"] = image.record()
    if security is not None:
        extra["security"] = dict(security.report)
    if emergency:
        extra["emergency"] = dict(emergency)
    if infra.release is not None:
        extra["release"] = dict(infra.release)
    res = start(
        ctx,
        config,
        artifact=build.artifact,
        scenario=scenario,
        commit=commit,
        extra=extra,
        plan_hash=infra.plan_sha256,
        pre_approved_by=pre_approved_by,
    )
    return CanaryResult(res, ctx.env.name)


def _wanted(services: DeployServices, env_name: str) -> dict[str, Any]:
    from stageflow.function_config import wanted_all

    subject = f"{services.config.service.name}/{env_name}"
    return {
        "spec": wanted_all(services.config, env_name),
        "say": lambda line: services.reporter.info("config", subject, line),
    }


def ensure_environment(services: DeployServices, env_name: str) -> Context:
    """The wired environment; when Terraform has not built it on this target yet, build it first with
    the same stages a deploy runs (build, infrastructure). Rehearsals use this on the emulator."""
    from stageflow.errors import NotDeployed

    try:
        return services.environment(env_name)
    except NotDeployed:
        services.reporter.info(
            "stage", env_name, "not built on this target yet: build + infrastructure first"
        )
    run, rep, env = PipelineRun(env_name), services.reporter, services.env(env_name)
    run_stage(rep, run, "build", lambda: stage_build(services.package))
    infra = run_stage(
        rep,
        run,
        "infrastructure",
        lambda: stage_infrastructure(env, services.terraform, services.outputs, services.secrets),
    )
    run_stage(
        rep, run, "secrets", lambda: stage_secrets(services.secrets, infra, **_wanted(services, env_name))
    )
    return services.environment(env_name, outputs=infra.outputs)


def deploy(
    services: DeployServices,
    env_name: str,
    *,
    scenario: Path | None = None,
    commit: str | None = None,
    pre_approved_by: str | None = None,
    emergency: str | None = None,  # --emergency --reason: deploy during a freeze (recorded, notified)
) -> PipelineRun:
    env = services.env(env_name)  # unknown (or implicitly local protected) environment: exit 2 first
    if scenario is not None:  # a malformed scenario: exit 2 before any stage runs (not at the canary)
        from stageflow.local.simulator import load_scenario

        load_scenario(scenario)
    overridden = services.freeze_check(env_name, emergency)  # frozen: exit 2 before any stage runs
    cfg, rep, checks = services.config, services.reporter, services.checks
    run = PipelineRun(env_name)
    # the service's lint and unit tests, then the security gate, before anything is built for deploy
    run_stage(rep, run, "lint", checks.lint)
    run_stage(rep, run, "unit", checks.unit)
    build = run_stage(rep, run, "build", lambda: stage_build(services.package))
    security = run_stage(rep, run, "security", lambda: stage_security(services.security_gate, build))
    image = run_stage(rep, run, "image", lambda: stage_image(env_name, services.images))
    infra = run_stage(
        rep,
        run,
        "infrastructure",
        lambda: stage_infrastructure(env, services.terraform, services.outputs, services.secrets),
    )
    run_stage(
        rep, run, "secrets", lambda: stage_secrets(services.secrets, infra, **_wanted(services, env_name))
    )
    canary = run_stage(
        rep,
        run,
        "canary",
        lambda: stage_canary(
            services.start_canary,
            cfg,
            services.environment(env_name, outputs=infra.outputs),
            build,
            infra,
            run=run,
            image=image,
            security=security,
            scenario=scenario,
            commit=commit,
            pre_approved_by=pre_approved_by,
            emergency=overridden and {"reason": emergency, "freeze": overridden.to_json()},
        ),
    )
    # after the canary (production: once promoted): smoke always; integration and load where the
    # environment's [tests] table says (design: integration on dev, integration + load on staging)
    paused = canary.paused
    run_stage(rep, run, "smoke", lambda: checks.smoke(env_name, paused=paused))
    run_stage(rep, run, "integration", lambda: checks.integration(env_name, paused=paused))
    run_stage(rep, run, "load", lambda: checks.load(env_name, paused=paused))
    where, notes = services.describe_target(env_name)
    lines = [f"deployed {cfg.service.name} to {env_name}{where}"]
    lines += [f"  {s.name:<15} {s.summary} ({s.seconds:.1f} s)" for s in run.stages]
    lines += notes
    rep.result("\n".join(lines), run.to_json())
    return run
