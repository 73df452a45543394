"""The deploy chain's services, wired by the composition root (part of it: ``Factory.deploy_services``
calls :func:`deploy_services`; nothing else imports this module)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stageflow.factory import Factory
    from stageflow.ports import FunctionCheck
    from stageflow.services import DeployServices

_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def function_check(factory: Factory, function: str) -> FunctionCheck:
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
    return LambdaInvokeCheck(lam, function, svc.smoke, factory.config.root, svc.runtime)


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
            ctx = factory.environment(env_name)
            return ctx.function_check.check(ctx.outputs.alias_name)

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
