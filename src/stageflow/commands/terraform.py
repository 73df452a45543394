"""`stageflow plan ENV`, `stageflow apply ENV`, `stageflow drift ENV`: thin callers of the Terraform
service the factory builds (terraform/api.py)."""

from __future__ import annotations

import click

from stageflow.errors import ExitCode, StageflowError


class DriftDetected(StageflowError):
    """`stageflow drift` found differences (exit 1, with the summary on stdout)."""

    exit_code = ExitCode.UNEXPECTED


def _show_plan(factory, result, *, as_result: bool) -> None:
    title = f"{result.kind} {result.env_name}"
    text = f"{title}: " + result.summary.table() + f"\n  policy: {result.policy.reason}"
    if as_result:
        factory.reporter.result(text, result.to_json())
    else:
        for line in text.splitlines():
            factory.reporter.info("terraform", "", line)


def _build_packages(factory) -> None:
    """The zips the environment roots name (build/lambda/*.zip): built first, so plan/apply work on a
    fresh clone."""
    from stageflow.packaging.lambda_zip import build_packages

    pk = build_packages(factory.config)
    factory.reporter.info(
        "build",
        "",
        f"{pk.paths[0].name} {pk.service.digest[:19]}…, {pk.paths[1].name} {pk.rollback.digest[:19]}…",
    )


def register(cli) -> None:
    @cli.command("plan")
    @click.argument("env")
    @click.option(
        "--allow-destroy", is_flag=True, help="Accept deletes/replacements in a protected environment."
    )
    @click.pass_obj
    def plan_cmd(factory, env: str, allow_destroy: bool):
        """Plan ENV: init its backend, save the plan, print the summary and the policy decision.

        Exits 2 when the plan deletes or replaces resources in a protected environment and
        --allow-destroy was not given.
        """
        from stageflow import pipeline
        from stageflow.terraform.api import enforce_policy

        cfg = factory.env(env)
        pipeline.stage_build(factory.package)  # the packages the root deploys, as a deploy builds them
        # Terraform gets no secret; values an older deploy left in a function's environment are masked
        pipeline.redact_deployed_secrets(factory.outputs_store, factory.secret_store, cfg)
        result = factory.terraform.plan(env, allow_destroy=allow_destroy)
        try:
            _show_plan(factory, result, as_result=True)
            enforce_policy(result)
        finally:
            result.plan_file.unlink(missing_ok=True)  # `apply` plans again: a plan file is never left

    @cli.command("apply")
    @click.argument("env")
    @click.option(
        "--allow-destroy", is_flag=True, help="Accept deletes/replacements in a protected environment."
    )
    @click.pass_obj
    def apply_cmd(factory, env: str, allow_destroy: bool):
        """Plan ENV, check the policy, then apply exactly that saved plan (skipped when no changes)."""
        from stageflow import pipeline

        cfg = factory.env(env)
        build = pipeline.stage_build(factory.package)
        factory.reporter.info("build", env, build.summary)
        infra = pipeline.stage_infrastructure(
            cfg,
            factory.terraform,
            factory.outputs_store,
            factory.secret_store,
            allow_destroy=allow_destroy,
            show=lambda p: _show_plan(factory, p, as_result=False),
        )
        result, applied = infra.plan, infra.apply
        human = f"apply {env}: " + (
            "applied: " + applied.reason if applied.applied else "skipped: no changes"
        )
        factory.reporter.result(human, {"plan": result.to_json(), "apply": applied.to_json()})

    @cli.command("drift")
    @click.argument("env")
    @click.pass_obj
    def drift_cmd(factory, env: str):
        """Compare ENV's infrastructure with its code; exit 1 with the summary when they differ."""
        from stageflow import pipeline

        cfg = factory.config.env(env)
        _build_packages(factory)
        pipeline.redact_deployed_secrets(factory.outputs_store, factory.secret_store, cfg)
        result = factory.terraform.drift(env)
        # a drift plan is never applied, and its prior state holds what the function's environment holds
        result.plan_file.unlink(missing_ok=True)
        if result.changes:
            _show_plan(factory, result, as_result=True)
            raise DriftDetected(
                f"drift in {env}: {result.summary.headline()}",
                "review it: apply the code, or fix the infrastructure",
            )
        factory.reporter.result(f"drift {env}: none", result.to_json())
