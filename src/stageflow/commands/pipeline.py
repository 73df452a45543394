"""CLI: deploy (the whole pipeline), smoke, load."""

from __future__ import annotations

from pathlib import Path

import click

from stageflow.commands.freeze import EMERGENCY, EMERGENCY_REASON, emergency_reason


def register(cli: click.Group) -> None:
    _register_deploy(cli)
    _register_smoke(cli)
    _register_load(cli)


def _register_deploy(cli: click.Group) -> None:
    @cli.command("deploy")
    @click.argument("env")
    @click.option(
        "--scenario",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Local mode: the traffic scenario the simulator plays during the canary.",
    )
    @click.option("--commit", default=None, help="Commit being deployed (recorded).")
    @click.option(
        "--pre-approved-by",
        envvar="STAGEFLOW_PRE_APPROVED_BY",
        default=None,
        help="The approval before the canary was given upstream (e.g. CodePipeline's approval "
        "stage); recorded as who approved. Env: STAGEFLOW_PRE_APPROVED_BY.",
    )
    @click.option(
        "--artifacts",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="STAGEFLOW_ARTIFACTS",
        default=None,
        help="Deploy the Build stage's artifact directory (`stageflow package --out DIR`): its zips and "
        "image digest, verified against its manifest (exit 3 naming a file whose digest differs); "
        "nothing is rebuilt. Env: STAGEFLOW_ARTIFACTS.",
    )
    @EMERGENCY
    @EMERGENCY_REASON
    @click.pass_obj
    def deploy_cmd(factory, env, scenario, commit, pre_approved_by, artifacts, emergency, reason):
        """The pipeline for ENV: build → security gate → Terraform → canary → record → notify."""
        from stageflow.commands.canary import _git_commit
        from stageflow.pipeline import deploy

        if artifacts is not None:  # build once, deploy many: verified before anything is wired or run
            from stageflow.packaging.bundle import verify

            factory.env(env)  # an unknown environment: exit 2 first
            verify(artifacts)
        services = factory.deploy_services()
        if artifacts is not None:
            from stageflow.build_artifact import with_build_artifact

            services = with_build_artifact(services, artifacts)
        deploy(
            services,
            env,
            scenario=scenario,
            commit=commit or _git_commit(factory),
            pre_approved_by=pre_approved_by,
            emergency=emergency_reason(emergency, reason),
        )


def _register_smoke(cli: click.Group) -> None:
    @cli.command("smoke")
    @click.argument("env")
    @click.option(
        "--url",
        default=None,
        help="GET URL/health instead (a service with an HTTP endpoint of its own); default: invoke the "
        "function through its alias with [service] smoke's event, in both modes.",
    )
    @click.pass_obj
    def smoke_cmd(factory, env, url):
        """Invoke the deployed function through its alias with its smoke event; compare with expect."""
        _smoke(factory, env, url)


def _register_load(cli: click.Group) -> None:
    @cli.command("load")
    @click.argument("env")
    @click.option("--url", default=None, help="Base URL (default in local mode: the service on 127.0.0.1).")
    @click.option(
        "--users",
        type=click.IntRange(1, 1000),
        default=None,
        help="Concurrent users (default: environments.ENV.tests.users); each sends at most one request "
        "per second.",
    )
    @click.option(
        "--spawn-rate", type=click.FloatRange(0.1, 1000), default=None, help="Users started per second."
    )
    @click.option(
        "--seconds", type=click.IntRange(1, 3600), default=None, help="Duration (default: tests.seconds)."
    )
    @click.pass_obj
    def load_cmd(factory, env, url, users, spawn_rate, seconds):
        """The service's locustfile, headless, with the environment's load profile; p95 and error rate
        compared with the gates; HTML and JSON reports in reports/; the result recorded in the history."""
        _load(factory, env, url, users, spawn_rate, seconds)


def _load(
    factory, env: str, url: str | None, users: int | None, spawn_rate: float | None, seconds: int | None
) -> None:
    """`stageflow load ENV`: the run, recorded in the environment's latest deployment."""
    from stageflow.checks.load import run_load
    from stageflow.checks.stages import record_in_history
    from stageflow.checks.target import service_target
    from stageflow.errors import UsageError

    cfg = factory.config
    tests_url = factory.env(env).tests.url
    with service_target(
        lambda: factory.service_endpoint(env), tests_url=tests_url, region=cfg.service.region, url=url
    ) as target:
        if target.url is None:  # a root without the front door's url output, and no tests.url
            raise UsageError(
                "load needs the service's HTTP endpoint",
                f"--url, the root's url output (modules/front_door), or environments.{env}.tests.url",
            )
        run = run_load(
            cfg,
            env,
            target.url,
            factory.reporter,
            users=users,
            spawn_rate=spawn_rate,
            seconds=seconds,
            record=lambda data: record_in_history(factory.environment(env).history, "load", data),
        )
    res = run.result
    where = f" (recorded in {run.deployment_id})" if run.deployment_id else ""
    human = f"load {env}: {res.detail}: within the gates{where}; report {run.html}"
    factory.reporter.result(human, run.to_json())


def _smoke(factory, env: str, url: str | None) -> None:
    """`stageflow smoke ENV`: the function through its alias with the smoke event (the pre-traffic
    check's invocation), or ``/health`` at ``url``."""
    from stageflow.checks.smoke import smoke_url
    from stageflow.errors import CheckFailed

    factory.env(env)
    if not url:
        from stageflow.deploy.release import check_aliases

        res = check_aliases(factory.environment(env).release)
        factory.reporter.result(f"smoke {env}: {res.line()}", res.to_json())
        if not res.ok:
            raise CheckFailed(f"smoke check failed: {res.line()}", "see: stageflow status " + env)
        return
    res = smoke_url(url)
    human = f"smoke {env}: {res.target}/health → {res.status} {'ok' if res.ok else 'FAILED'}"
    if not res.ok:
        factory.reporter.result(human, res.to_json())
        raise CheckFailed(
            f"smoke check failed: {res.target} answered {res.status}", "see: stageflow status " + env
        )
    factory.reporter.result(human, res.to_json())
