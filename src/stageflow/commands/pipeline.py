"""CLI: deploy (the whole pipeline), smoke, load."""

from __future__ import annotations

from pathlib import Path

import click


def _record_extra(factory, env: str, key: str, value: dict) -> str | None:
    """Attach a result to the environment's latest deployment record."""
    ctx = factory.environment(env)
    latest = ctx.history.list(limit=1)
    if not latest:
        return None
    dep = latest[0]
    ctx.history.update(dep, extra={**dep.extra, key: value})
    return dep.deployment_id


def register(cli: click.Group) -> None:
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
    @click.pass_obj
    def deploy_cmd(factory, env, scenario, commit, pre_approved_by):
        """The pipeline for ENV: build → security gate → Terraform → canary → record → notify."""
        from stageflow.commands.canary import _git_commit
        from stageflow.pipeline import deploy

        deploy(
            factory,
            env,
            scenario=scenario,
            commit=commit or _git_commit(factory),
            pre_approved_by=pre_approved_by,
        )

    @cli.command("smoke")
    @click.argument("env")
    @click.option(
        "--url",
        default=None,
        help="Base URL of the service (default: local: the service on "
        "127.0.0.1; AWS: invoke the function through its alias).",
    )
    @click.pass_obj
    def smoke_cmd(factory, env, url):
        """Check the deployed service's health endpoint."""
        from stageflow import smoke
        from stageflow.errors import CheckFailed

        factory.env(env)
        if url:
            res = smoke.smoke_url(url)
        else:
            with factory.service_endpoint(env) as ep:
                if ep.url is not None:
                    res = smoke.smoke_url(ep.url)
                else:
                    res = smoke.smoke_lambda(ep.lambda_client, ep.function, ep.alias)
        human = f"smoke {env}: {res.target}/health → {res.status} {'ok' if res.ok else 'FAILED'}"
        if not res.ok:
            factory.reporter.result(human, res.to_json())
            raise CheckFailed(
                f"smoke check failed: {res.target} answered {res.status}", "see: stageflow status " + env
            )
        factory.reporter.result(human, res.to_json())

    @cli.command("load")
    @click.argument("env")
    @click.option("--url", default=None, help="Base URL (default in local mode: the service on 127.0.0.1).")
    @click.option(
        "--users",
        type=click.IntRange(1, 50),
        default=5,
        show_default=True,
        help="Concurrent users; each sends at most one request per second.",
    )
    @click.option("--seconds", type=click.IntRange(1, 300), default=10, show_default=True)
    @click.pass_obj
    def load_cmd(factory, env, url, users, seconds):
        """A bounded headless locust run; p95 and error rate compared with the gates and recorded."""
        from stageflow import smoke
        from stageflow.errors import CheckFailed, UsageError

        gates = factory.env(env).gates

        def _run(target):
            return smoke.run_load(
                target,
                users=users,
                seconds=seconds,
                max_error_rate=gates.max_error_rate,
                max_p95_ms=gates.max_p95_ms,
            )

        if url:
            res = _run(url)
        else:
            with factory.service_endpoint(env) as ep:
                if ep.url is None:
                    raise UsageError("load needs an HTTP endpoint", "pass --url (the service's base URL)")
                res = _run(ep.url)
        dep_id = _record_extra(factory, env, "load", res.to_json())
        where = f" (recorded in {dep_id})" if dep_id else ""
        verdict = "within the gates" if res.within_gates else "OUTSIDE the gates"
        human = f"load {env}: {res.detail}: {verdict}{where}"
        factory.reporter.result(human, {**res.to_json(), "deployment_id": dep_id})
        if not res.within_gates:
            raise CheckFailed(f"load test outside the gates: {res.detail}")
