"""The deploy chain's services, wired by the composition root (part of it: ``Factory.deploy_services``
calls :func:`deploy_services`; `commands/chaos.py` calls :func:`chaos_runner`)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stageflow.deploy.release import Release
    from stageflow.factory import Factory
    from stageflow.invokecheck import Smoke
    from stageflow.outputs import DeployOutputs
    from stageflow.ports import FunctionCheck
    from stageflow.services import DeployServices

_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def function_check(factory: Factory, function: str, smoke: Smoke | None = None) -> FunctionCheck:
    """The check that invokes ``function`` with the service's smoke event: a version before it takes
    traffic, the alias after promotion. On AWS and on the emulator alike the Lambda API runs the
    deployed zip (the emulator's local runtime); the one difference is decided here: in local mode a
    function of another architecture than this machine's cannot run, so it is "not run here" (its zip
    is checked statically at build) and passes."""
    from stageflow.invokecheck import LambdaInvokeCheck, NotRunHere

    svc = factory.config.service
    machine = platform.machine().lower()
    if factory.local and svc.architecture != _HOST_ARCH.get(machine, machine):
        return NotRunHere(function, f"{svc.architecture}; checked statically at build")
    lam = factory.aws.client("lambda")
    return LambdaInvokeCheck(lam, function, smoke or svc.smoke, factory.config.root, svc.runtime)


def release(factory: Factory, out: DeployOutputs, gates) -> Release | None:
    """Several functions (``out.functions``): one member per function — its alias, publisher, its own
    smoke's pre-traffic check, its gate reader and traffic feed; paired with ``Config.functions`` by
    key. One function: None (the context's own ports are its one member)."""
    from dataclasses import replace

    from stageflow.deploy.publish import LambdaPublisher
    from stageflow.deploy.release import Member, Release
    from stageflow.deploy.traffic import AliasTraffic
    from stageflow.invokecheck import Smoke

    if len(out.functions) == 1:
        return None
    lam = factory.aws.client("lambda")
    configured = {f.key: f for f in factory.config.functions}
    members = []
    for t in out.functions:
        fc = configured.get(t.key)
        one = replace(out, function_name=t.function_name, alias_name=t.alias_name, functions=(t,))
        members.append(
            Member(
                t.key,
                AliasTraffic(lam, t.function_name, t.alias_name),
                publisher=LambdaPublisher(lam, t.function_name, t.alias_name),
                check=function_check(factory, t.function_name, fc.smoke if fc else Smoke()),
                gates=replace(gates, function=t.function_name, alias=t.alias_name),
                feed_for=lambda scenario, start, one=one: factory.traffic_feed(one, scenario, start),
            )
        )
    return Release(tuple(members))


def freeze_check(factory: Factory, env_name: str, emergency: str | None):
    """Refuse ``deploy``/``canary`` of ``env_name`` during a freeze (exit 2), or record and notify the
    ``--emergency`` override: the overridden freeze, or ``None``. An environment Terraform has not built
    has no history, so only its stageflow.toml windows apply."""
    from stageflow.errors import NotDeployed
    from stageflow.freeze.guard import check_freeze
    from stageflow.history import default_who

    env = factory.env(env_name)
    try:
        ctx = factory.environment(env_name)
    except NotDeployed:
        ctx = None
    return check_freeze(
        env,
        ctx.history if ctx else None,
        factory.clock.now(),
        emergency=emergency,
        who=default_who(),
        service=factory.config.service.name,
        notifier=ctx.notifier if ctx else None,
    )


def front_door_url(factory: Factory, url: str | None) -> str | None:
    """The seam "front door URL": the root's ``url`` output is the stage's invoke URL. AWS: that URL.
    Emulator: the loopback front door of that API and stage (:mod:`stageflow.local.frontdoor`, served by
    the emulator process), where requests become Invokes of the alias through the local runtime."""
    if not factory.local or not url:
        return url
    from stageflow.local.frontdoor import local_url

    return local_url(factory.aws_target.endpoint, url) or url


def service_endpoint(factory: Factory, env_name: str):
    """Where the integration suite and load tests reach the service: the front door's URL (its
    ``tests.url`` instead, when set, on AWS), and the function alias behind it."""
    from stageflow.services import ServiceEndpoint

    env = factory.env(env_name)
    out = factory.outputs(env_name)
    url = out.url if factory.local else (env.tests.url or out.url)
    fn = next((f for f in out.functions if f.key == factory.config.service.http_function), out.functions[0])
    return ServiceEndpoint(
        url=url, lambda_client=factory.aws.client("lambda"), function=fn.function_name, alias=fn.alias_name
    )


def deploy_services(factory: Factory) -> DeployServices:
    from stageflow.checks import stages as checks
    from stageflow.deploy import canary
    from stageflow.pipeline import docker_engine
    from stageflow.services import DeployServices, ImageBuilder, ServiceChecks

    cfg, rep = factory.config, factory.reporter

    def endpoint(env_name: str):
        return lambda: factory.service_endpoint(env_name)

    def record(env_name: str):
        return lambda key, value: checks.record_in_history(factory.environment(env_name).history, key, value)

    def check_alias(env_name: str):
        def run():
            from stageflow.deploy.release import check_aliases

            return check_aliases(factory.environment(env_name).release)

        return run

    def smoke(env_name: str, *, paused: bool = False):
        return checks.stage_smoke(env_name, check_alias(env_name), record(env_name), paused=paused)

    def integration(env_name: str, *, paused: bool = False):
        return checks.stage_integration(
            cfg, env_name, rep, endpoint(env_name), record(env_name), paused=paused
        )

    def load(env_name: str, *, paused: bool = False):
        return checks.stage_load(cfg, env_name, rep, endpoint(env_name), record(env_name), paused=paused)

    return DeployServices(
        config=cfg,
        reporter=rep,
        env=factory.env,
        freeze_check=lambda env_name, emergency: freeze_check(factory, env_name, emergency),
        package=factory.package,
        security_gate=factory.security_gate,
        images=ImageBuilder(engine=docker_engine, build=factory.build_image),
        terraform=factory.terraform,
        outputs=factory.outputs_store,
        secrets=factory.secret_store,
        environment=factory.environment,
        start_canary=canary.start,
        checks=ServiceChecks(
            lint=lambda: checks.stage_service_lint(cfg, rep),
            unit=lambda: checks.stage_service_unit(cfg, rep, factory.state_dir / "cache" / "testenv"),
            smoke=smoke,
            integration=integration,
            load=load,
        ),
        describe_target=factory.describe_target,
    )


def chaos_runner(factory: Factory, env_name: str):
    """The chaos stage's seam (docs/architecture.md): on AWS the environment's FIS experiment templates
    (FIS's Lambda actions through its extension layer); on the emulator a real canary per experiment,
    the fault from the local runtime's hooks and real Invokes through the alias on the virtual clock."""
    if not factory.local:
        from stageflow.chaos.run import FisChaos

        return FisChaos(factory.aws.client("fis"), factory.config.service.name, env_name)
    from stageflow.chaos.feed import InvokeFeed
    from stageflow.chaos.injector import LocalFaults
    from stageflow.chaos.run import LocalChaos
    from stageflow.packaging.lambda_zip import build_packages
    from stageflow.pipeline import ensure_environment

    cfg = factory.config
    ctx = ensure_environment(factory.deploy_services(), env_name)
    out, event = ctx.outputs, cfg.service.smoke.event(cfg.root)
    injector = LocalFaults(factory.aws_target.endpoint)

    def feed_for(experiment, start):
        lam, cw = factory.aws.client("lambda"), factory.aws.client("cloudwatch")
        return InvokeFeed(
            lam, cw, out.function_name, out.alias_name, event, experiment, injector, start=start
        )

    artifact = build_packages(cfg).service
    return LocalChaos(ctx, cfg, artifact=artifact, feed_for=feed_for, supports=injector.supports)


def approver(factory: Factory, as_name: str | None) -> tuple[str, tuple[str, ...]]:
    """Who answers a pause, and the roles ``[approvers]`` gives them. On AWS: the caller (STS
    GetCallerIdentity: its role session name or user name); ``--as`` is refused there (exit 2). In
    local mode: ``--as NAME``, else this machine's user."""
    from stageflow.deploy.approvals import identity_from_arn
    from stageflow.errors import UsageError
    from stageflow.history.locks import default_who

    if factory.local:
        who = (as_name or "").strip() or default_who()
    elif as_name is not None:
        raise UsageError(
            "--as NAME is for local mode only: on AWS the approver is the AWS caller", "drop --as"
        )
    else:
        from stageflow.aws import aws_error

        try:
            who = identity_from_arn(factory.aws.client("sts").get_caller_identity()["Arn"])
        except Exception as exc:
            raise (aws_error(exc, "STS GetCallerIdentity") or exc) from None
    return who, tuple(factory.config.approvers.get(who, ()))


def decision_links(factory: Factory, env_name: str, ctx):
    """The approval notice's links for one environment (deploy/decision.py): the deployment's HTML
    report (deployment_report/) uploaded to the report bucket (``STAGEFLOW_REPORT_BUCKET``, else
    ``[environments.NAME.notifications] report_bucket``; the emulator's S3 locally) behind a presigned
    URL that expires at the pause's deadline, and the environment's CloudWatch dashboard
    (``{service}-{env}``, infrastructure/modules/service/dashboard.tf). A link that cannot be made is a
    ``problem`` line in the notice, never a failed deploy."""
    import os

    from stageflow.deploy.decision import report_key
    from stageflow.isotime import parse_iso

    region = factory.aws.target.region
    dashboard = f"{factory.config.service.name}-{env_name}"
    console = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
    bucket = os.environ.get("STAGEFLOW_REPORT_BUCKET", "").strip() or ctx.env.notifications.report_bucket

    def links(dep, state) -> dict:
        out: dict = {"dashboard_url": f"{console}#dashboards:name={dashboard}", "report_url": None}
        if not bucket:
            out["problem"] = "no report bucket ([environments.NAME.notifications] report_bucket)"
            return out
        from stageflow.deployment_report.data import gather
        from stageflow.deployment_report.render import render_html

        now = ctx.clock.now()
        seconds = int((parse_iso(state.deadline) - now).total_seconds()) if state.deadline else 3600
        key = report_key(dep, state)
        try:
            html = render_html(gather(ctx.history, dep, ctx.env.gates))
            s3 = factory.aws.client("s3")
            s3.put_object(Bucket=bucket, Key=key, Body=html.encode(), ContentType="text/html; charset=utf-8")
            out["report_url"] = s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=min(max(seconds, 60), 604800)
            )
        except Exception as exc:  # noqa: BLE001 - the notice goes out with what there is
            out["problem"] = f"report not stored in s3://{bucket}/{key}: {type(exc).__name__}: {exc}"
        return out

    return links


def infra_rollback(factory: Factory, env_name: str, *, allow_destroy: bool, reason: str):
    """``stageflow rollback ENV --infra`` (:mod:`stageflow.rollback.infra`): the old commit's Terraform
    (:mod:`stageflow.rollback.reapply`) on this target — the same endpoint, state directory and tools
    as the working tree's — then the traffic rollback."""
    import os

    from stageflow import git
    from stageflow.rollback.cli import rollback
    from stageflow.rollback.infra import rollback_infra
    from stageflow.rollback.reapply import Reapply
    from stageflow.services import SecretStore
    from stageflow.terraform import binary
    from stageflow.terraform.api import TerraformService

    cfg = factory.config
    tools = binary.tools_dir(cfg.root)  # the old tree has no .tools of its own
    environ = {**os.environ, "STAGEFLOW_TOOLS_DIR": str(tools)}
    reapply = Reapply(
        project_root=cfg.root,
        config_name=cfg.path.name,
        work=factory.state_dir / "rollback-infra",
        terraform_for=lambda old: TerraformService(
            config=old,
            state_dir=factory.state_dir,
            endpoint=factory.terraform_endpoint,
            reporter=factory.reporter,
            environ=environ,
        ),
        secrets_for=lambda old: SecretStore(old, lambda: factory.aws),
        outputs=factory.outputs_store,
        env_name=env_name,
        allow_destroy=allow_destroy,
        protected=cfg.env(env_name).protected,
    )
    return rollback_infra(
        factory.environment(env_name),
        has_commit=lambda commit: git.has_commit(cfg.root, commit),
        working_tree_digest=lambda: factory.terraform.inputs_digest(env_name),
        reapply=reapply,
        traffic=rollback,
        reason=reason,
    )
