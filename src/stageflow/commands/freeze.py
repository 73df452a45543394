"""CLI: freeze, unfreeze (deploy freezes set by a person; windows live in stageflow.toml)."""

from __future__ import annotations

import click

from stageflow.freeze.model import show

EMERGENCY = click.option(
    "--emergency", is_flag=True, help="Deploy during a freeze (needs --reason; recorded and notified)."
)
EMERGENCY_REASON = click.option(
    "--reason", default=None, help="Why this emergency deploy (with --emergency)."
)


def emergency_reason(emergency: bool, reason: str | None) -> str | None:
    """The ``--emergency --reason`` pair as the override's reason (``None``: no override asked)."""
    from stageflow.errors import UsageError

    if reason is not None and not emergency:
        raise UsageError("--reason goes with --emergency (deploy during a freeze)")
    if emergency and not (reason or "").strip():
        raise UsageError("--emergency needs --reason TEXT (recorded and notified)")
    return reason.strip() if emergency and reason else None


def register(cli: click.Group) -> None:
    @cli.command("freeze")
    @click.argument("env")
    @click.option(
        "--until",
        "until",
        required=True,
        help="When deploys may go again: a time with a zone (2026-12-24T18:00Z) or 90m, 4h, 3d.",
    )
    @click.option("--reason", required=True, help="Why (shown to whoever tries to deploy; recorded).")
    @click.pass_obj
    def freeze_cmd(factory, env, until, reason):
        """Refuse deploy and canary in ENV until a time (rollback is never frozen)."""
        from stageflow.errors import UsageError
        from stageflow.freeze.model import parse_until
        from stageflow.history import default_who

        if not reason.strip():
            raise UsageError("--reason must say why (shown to whoever tries to deploy)")
        now = factory.clock.now()
        when = parse_until(until, now)  # bad input: exit 2 before anything is read or written
        ctx = factory.environment(env)
        ctx.history.set_freeze(when, reason.strip(), default_who(), now)
        factory.reporter.result(
            f"{env}: frozen until {show(when)}: {reason.strip()} (lift: stageflow unfreeze {env})",
            {"environment": env, "until": when.isoformat(), "reason": reason.strip()},
        )

    @cli.command("unfreeze")
    @click.argument("env")
    @click.option("--reason", default="freeze lifted", help="Why (recorded).")
    @click.pass_obj
    def unfreeze_cmd(factory, env, reason):
        """Lift the freeze set with `stageflow freeze` (stageflow.toml windows stay)."""
        from stageflow.history import default_who

        ctx = factory.environment(env)
        held = ctx.history.clear_freeze(reason, default_who(), factory.clock.now())
        windows = [w.describe() for w in ctx.env.freeze]
        note = f"; stageflow.toml windows still apply: {'; '.join(windows)}" if windows else ""
        human = f"{env}: freeze lifted ({held['reason']}){note}" if held else f"{env}: not frozen{note}"
        factory.reporter.result(human, {"environment": env, "lifted": held, "windows": windows})
