"""CLI: approve (options --extend, --skip-to-full), reject, tick (pauses whose deadline passed)."""

from __future__ import annotations

import click

from stageflow.commands.canary import ENV, _interactive, report_outcome

AS = click.option(
    "--as",
    "as_name",
    default=None,
    help="Local mode: who answers (an identity of [approvers]); on AWS the caller is the approver.",
)
REASON = click.option("--reason", default="", help="Why (recorded with the answer and shown by status).")


def register(cli: click.Group) -> None:
    _register_answers(cli)
    _register_tick(cli)


def _register_answers(cli: click.Group) -> None:
    @cli.command("approve")
    @ENV
    @AS
    @click.option(
        "--extend",
        "extend",
        type=float,
        default=None,
        metavar="MINUTES",
        help="Bake this many minutes longer at this step (judged as usual), then go on.",
    )
    @click.option("--skip-to-full", is_flag=True, help="Straight to 100 % (still monitored).")
    @REASON
    @click.option("--no-input", is_flag=True, help="Never prompt at later approval pauses.")
    @click.option(
        "--approved-upstream",
        envvar="STAGEFLOW_APPROVED_UPSTREAM",
        default=None,
        metavar="WHERE",
        help="The people approved this pause upstream (CodePipeline's approval action, whose window "
        "ends after stageflow's deadline); recorded as such. Env: STAGEFLOW_APPROVED_UPSTREAM.",
    )
    @click.pass_obj
    def approve_cmd(factory, env, as_name, extend, skip_to_full, reason, no_input, approved_upstream):
        """Approve the paused deployment in ENV; it goes on when the environment's rule is met
        (required distinct approvers, roles). Exit 2 when this identity already approved it, when
        the pause's deadline passed, or on a bad option (nothing changes)."""
        from stageflow.deploy import canary
        from stageflow.deploy.approvals import extend_minutes_problem
        from stageflow.errors import UsageError
        from stageflow.wiring import approver

        env_cfg = factory.config.env(env)
        if extend is not None and skip_to_full:
            raise UsageError("--extend and --skip-to-full are two different answers: give one")
        option, minutes = "approve", None
        if extend is not None:
            problem = extend_minutes_problem(extend, env_cfg.approvals.timeout_minutes)
            if problem:
                raise UsageError(problem, "nothing changed")
            option, minutes = "extend", float(extend)
        elif skip_to_full:
            option = "skip_to_full"
        who, roles = approver(factory, as_name)
        if approved_upstream:
            who, reason = approved_upstream, reason or f"approved upstream by {who}"
        answer = canary.Answer("approve", who, option, minutes, roles, reason, bool(approved_upstream))
        ctx = factory.environment(env)
        report_outcome(factory, canary.run_cont(ctx, answer=answer, interactive=_interactive(no_input)))

    @cli.command("reject")
    @ENV
    @AS
    @click.option("--reason", default="rejected by a person", help="Why (recorded and notified).")
    @click.pass_obj
    def reject_cmd(factory, env, as_name, reason):
        """Reject the paused deployment in ENV: all traffic back on the previous version (exit 4)."""
        from stageflow.deploy import canary
        from stageflow.wiring import approver

        factory.config.env(env)
        who, roles = approver(factory, as_name)
        answer = canary.Answer("reject", who, roles=roles, reason=reason)
        report_outcome(factory, canary.run_cont(factory.environment(env), answer=answer))


def _register_tick(cli: click.Group) -> None:
    @cli.command("tick")
    @click.argument("envs", nargs=-1)
    @click.pass_obj
    def tick_cmd(factory, envs):
        """End every approval pause whose deadline passed (before the canary: rejected; at a canary
        step: rolled back), in ENVS or every environment built. Exit 0; says what it did."""
        from stageflow.errors import NotDeployed
        from stageflow.rollback.tick import TickResult, tick

        names = envs or factory.config.environment_names
        for name in names:
            factory.config.env(name)  # an unknown name: exit 2 before anything runs
        results = []
        for name in names:
            try:
                ctx = factory.environment(name)
            except NotDeployed:
                if envs:
                    raise
                results.append(TickResult(name, False, "not deployed: nothing to do"))
                continue
            results.append(
                tick(
                    name,
                    ctx.service,
                    history=ctx.history,
                    traffic=ctx.traffic,
                    notifier=ctx.notifier,
                    reporter=ctx.reporter,
                    now=ctx.clock.now(),
                    release=ctx.functions,
                )
            )
        human = "\n".join(f"{r.environment}: {r.text}" for r in results)
        factory.reporter.result(human, {"ticks": [r.to_json() for r in results]})
