"""`stageflow deploy ENV`: service lint → service unit tests → build → security gate → image →
infrastructure (Terraform) → secrets → canary (which records and notifies) → smoke → integration →
load (service_tests.py), as a chain of plain functions.

Each stage prints one summary line with its duration; a failure names its stage and ends with the
stage error's exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stageflow.errors import StageflowError


@dataclass
class StageResult:
    name: str
    ok: bool
    seconds: float
    summary: str
    data: dict = field(default_factory=dict)


@dataclass
class PipelineRun:
    environment: str
    stages: list[StageResult] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "environment": self.environment,
            "stages": [
                {
                    "name": s.name,
                    "ok": s.ok,
                    "seconds": round(s.seconds, 3),
                    "summary": s.summary,
                    **({"data": s.data} if s.data else {}),
                }
                for s in self.stages
            ],
        }


Stage = Callable[[Any, PipelineRun], tuple[str, dict]]


def _run_stage(factory, run: PipelineRun, name: str, fn: Stage) -> None:
    t0 = time.monotonic()
    try:
        summary, data = fn(factory, run)
    except StageflowError as exc:
        took = time.monotonic() - t0
        run.stages.append(StageResult(name, False, took, exc.one_line()))
        factory.reporter.info("stage", name, f"FAILED after {took:.1f} s")
        exc.message = f"stage {name} failed: {exc.message}"
        raise
    took = time.monotonic() - t0
    run.stages.append(StageResult(name, True, took, summary, data))
    factory.reporter.info("stage", name, f"{summary} ({took:.1f} s)")


def local_terraform_requested() -> bool:
    import os

    return os.environ.get("STAGEFLOW_LOCAL_TERRAFORM", "").strip() in ("1", "true", "yes")


def write_packages(factory) -> list[Path]:
    """The packages the environment roots deploy (tfvars: build/lambda/<service>.zip and the rollback
    handler's stageflow-rollback.zip), written at the repository root."""
    import stageflow
    from stageflow.build.lambda_zip import package

    cfg = factory.config
    out_dir = cfg.root / "build" / "lambda"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, src in (
        (f"{cfg.service.name}.zip", cfg.root / cfg.service.source),
        ("stageflow-rollback.zip", Path(stageflow.__file__).resolve().parent.parent),
    ):
        path = out_dir / name
        path.write_bytes(package(src).data)
        written.append(path)
    return written


def stage_build(factory, run: PipelineRun) -> tuple[str, dict]:
    from stageflow.build.lambda_zip import package

    cfg = factory.config
    art = package(cfg.root / cfg.service.source)
    run.context["artifact"] = art
    return f"lambda zip {art.files} files, {len(art.data)} bytes, {art.digest[:19]}…", {"digest": art.digest}


def stage_image(factory, run: PipelineRun) -> tuple[str, dict]:
    """The multi-stage Docker build (its `test` stage runs the unit tests), tagged and pushed, when an
    engine can be reached; skipped (and said so) when none runs."""
    from stageflow.build.docker_build import (
        DockerEngineUnavailable,
        build_for_env,
        docker_client,
        engine_info,
    )

    engine = engine_info()
    try:
        docker_client(engine, timeout=10)
    except DockerEngineUnavailable as exc:
        run.context["image"] = None
        return f"skipped: no Docker engine ({exc.message}; start one: scripts/docker-engine.sh up)", {
            "skipped": True
        }
    result = build_for_env(factory, run.environment, engine=engine)
    run.context["image"] = result
    where = next((d for img in result.images for d in img.repo_digests), None) or result.digest
    return f"images {', '.join(i.target for i in result.images)} pushed: {where}", result.to_json()


def stage_security(factory, run: PipelineRun) -> tuple[str, dict]:
    """The security gate (bandit, checkov, detect-secrets, trivy where available, pip-audit as
    information, SBOM): its result goes into the deployment record; findings stop the pipeline (exit 7)."""
    from stageflow.security import run_gate

    report = run_gate(factory.config.root, factory.reporter, artifact=run.context.get("artifact"))
    run.context["security"] = report.record()
    report.raise_for_status()
    statuses = ", ".join(f"{k} {v}" for k, v in report.record()["scanners"].items())
    return f"passed ({statuses})", report.record()


def stage_infrastructure(factory, run: PipelineRun) -> tuple[str, dict]:
    """AWS: Terraform plan (summary, protected-environment policy), apply exactly that plan, read the
    outputs; secrets reach Terraform only as TF_VAR_* in its environment, and the plan file (which holds
    them) is deleted after the apply. Local mode: the local provisioner."""
    from stageflow.deploy.canary import resolve_outputs

    env = factory.config.env(run.environment)
    if factory.local and not local_terraform_requested():
        out = resolve_outputs(factory, env, ensure=True)
        run.context["outputs"] = out
        how = (
            "the local provisioner (STAGEFLOW_LOCAL_TERRAFORM=1 applies the Terraform root to the "
            "emulator instead, when the hashicorp/aws provider is in the offline mirror)"
        )
        return f"{out.function_name}:{out.alias_name} via {how}", out.to_json()
    from stageflow.terraform import api

    if factory.local:
        root = factory.config.root / env.terraform.root
        ok, why = api.providers_available(root)
        if not ok:
            from stageflow.errors import EnvironmentFailure

            raise EnvironmentFailure(
                f"STAGEFLOW_LOCAL_TERRAFORM=1 but {why}", "unset it to use the local provisioner"
            )
        write_packages(factory)

    tf_env: dict[str, str] = {}
    if env.secrets:
        from stageflow import secrets

        tf_env = secrets.tf_vars(secrets.resolve(factory, env.name))
    planned = api.plan(factory, env.name, extra_env=tf_env)
    try:
        api.enforce_policy(planned)
        applied = api.apply(factory, planned, extra_env=tf_env)
    finally:
        planned.plan_file.unlink(missing_ok=True)
    out = api.outputs(factory, env.name)
    if factory.local:
        from stageflow.deploy.canary import remember_local_outputs

        remember_local_outputs(factory, env, out)
    run.context["outputs"] = out
    run.context["plan_hash"] = planned.plan_sha256
    what = planned.summary.headline() if applied.applied else "no changes"
    return f"terraform: {what}; {out.function_name}:{out.alias_name}", {
        "plan_sha256": planned.plan_sha256,
        "applied": applied.applied,
        **out.to_json(),
    }


def stage_secrets(factory, run: PipelineRun) -> tuple[str, dict]:
    """The environment's secrets into the function's environment (merged, other keys kept), so the
    version the canary publishes carries them. Values never reach the output: they are registered
    with the redactor as they are fetched."""
    env = factory.config.env(run.environment)
    if not env.secrets:
        return "none configured", {"names": []}
    from stageflow import secrets

    values = secrets.resolve(factory, env.name)
    out = run.context["outputs"]
    update = secrets.update_lambda_env(factory, out.function_name, values)
    names = sorted(values)
    return f"{len(names)} into {out.function_name}'s environment: {', '.join(names)}", {
        "names": names,
        "kept": list(update.kept) if hasattr(update, "kept") else [],
    }


def stage_canary(factory, run: PipelineRun) -> tuple[str, dict]:
    from stageflow.deploy import canary

    image = run.context.get("image")
    extra = {
        "pipeline": [
            {"stage": s.name, "ok": s.ok, "seconds": round(s.seconds, 2), "summary": s.summary}
            for s in run.stages
        ]
    }
    if image is not None:
        extra["image"] = {
            "digest": image.digest,
            "revision": image.revision,
            "version": image.version,
            "images": [
                {"target": i.target, "tags": list(i.tags), "repo_digests": list(i.repo_digests)}
                for i in image.images
            ],
        }
    if run.context.get("security") is not None:
        extra["security"] = run.context["security"]
    res = canary.start(
        factory,
        run.environment,
        artifact=run.context.get("artifact"),
        scenario=run.context.get("scenario"),
        commit=run.context.get("commit"),
        extra=extra,
        plan_hash=run.context.get("plan_hash"),
        pre_approved_by=run.context.get("pre_approved_by"),
    )
    if res.outcome is None:
        return f"nothing to deploy: {res.published.reason}", {"version": res.published.previous_version}
    o = res.outcome
    run.context["outcome"] = o
    if o.paused:
        return (
            f"v{o.deployment.version} awaits approval at {o.state.weight}%: stageflow approve "
            f"{run.environment}"
        ), {"deployment_id": o.deployment.deployment_id}
    return f"v{o.deployment.version} {o.state.phase} (was v{o.deployment.previous_version})", {
        "deployment_id": o.deployment.deployment_id,
        "version": o.deployment.version,
    }


def deploy(
    factory,
    env_name: str,
    *,
    scenario: Path | None = None,
    demo: bool = False,
    commit: str | None = None,
    pre_approved_by: str | None = None,
) -> PipelineRun:
    factory.config.env(env_name)  # unknown environment: exit 2 before anything runs
    run = PipelineRun(
        env_name, context={"scenario": scenario, "commit": commit, "pre_approved_by": pre_approved_by}
    )
    from stageflow.service_tests import AFTER_DEPLOY, BEFORE_BUILD

    # the service's lint and unit tests, then the security gate, before anything is built for deploy;
    # smoke, integration and load (as the environment's [tests] table says) after the canary
    stages: list[tuple[str, Stage]] = [
        *BEFORE_BUILD,
        ("build", stage_build),
        ("security", stage_security),
        ("image", stage_image),
        ("infrastructure", stage_infrastructure),
        ("secrets", stage_secrets),
        ("canary", stage_canary),
        *AFTER_DEPLOY,
    ]
    for name, fn in stages:
        _run_stage(factory, run, name, fn)
    lines = [
        f"deployed {factory.config.service.name} to {env_name}"
        + (" on the local AWS emulator" if factory.local else "")
    ]
    lines += [f"  {s.name:<15} {s.summary} ({s.seconds:.1f} s)" for s in run.stages]
    if factory.local:
        st = factory.emulator.status()
        lines.append(f"  emulator: {st.endpoint} (stageflow local status | stageflow local down)")
        lines.append(f"  see it: stageflow status {env_name}   roll back: make rollback ENV={env_name}")
    factory.reporter.result("\n".join(lines), run.to_json())
    return run
