"""CLI: the service's own test suites (checks/): unit, integration, lint-service."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command("unit")
    @click.option(
        "--floor",
        type=click.FloatRange(0, 100),
        default=None,
        help="Coverage floor in percent (default: the service's fail_under, else tests.coverage_floor, 80).",
    )
    @click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def unit_cmd(factory, floor, pytest_args):
        """The service's unit tests (tests.unit) in its own test environment (the runtime's Python and
        tests.requirements), with coverage as its settings say, against the floor; JUnit and Cobertura in
        reports/. Extra arguments go to pytest."""
        from stageflow.checks.unit import run_unit

        cache = factory.state_dir / "cache" / "testenv"
        res = run_unit(factory.config, factory.reporter, floor=floor, extra_args=pytest_args, cache_dir=cache)
        factory.reporter.result(f"unit: {res.summary}", res.to_json())

    @cli.command("integration")
    @click.argument("env")
    @click.option(
        "--url",
        default=None,
        help="The service's base URL (default: local mode: the app server on 127.0.0.1; AWS: "
        "tests.url and the function and alias from the environment's outputs).",
    )
    @click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def integration_cmd(factory, env, url, pytest_args):
        """The service's integration suite (tests.integration) against the deployed ENV."""
        from stageflow.checks.integration import run_integration
        from stageflow.checks.target import service_target

        cfg = factory.config
        tests_url = factory.env(env).tests.url
        with service_target(
            lambda: factory.service_endpoint(env), tests_url=tests_url, region=cfg.service.region, url=url
        ) as target:
            res = run_integration(cfg, env, target, factory.reporter, extra_args=pytest_args)
        factory.reporter.result(f"integration {env}: {res.summary}", res.to_json())

    @cli.command("lint-service")
    @click.pass_obj
    def lint_cmd(factory):
        """ruff check and ruff format --check over the service's source."""
        from stageflow.checks.lint import run_lint

        res = run_lint(factory.config, factory.reporter)
        factory.reporter.result(f"lint: {res.summary}", res.to_json())
