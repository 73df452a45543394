"""The deploy chain's services, wired by the composition root (part of it: ``Factory.deploy_services``
calls :func:`deploy_services`; nothing else imports this module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stageflow.factory import Factory
    from stageflow.services import DeployServices


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

    def smoke(env_name: str, *, paused: bool = False):
        return checks.stage_smoke(cfg, env_name, endpoint(env_name), record(env_name), paused=paused)

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
