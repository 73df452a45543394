"""CLI: canary, resume, rollback, status, history, unlock, demo (approve, reject, tick: approvals.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stageflow.commands.freeze import EMERGENCY, EMERGENCY_REASON, emergency_reason

ENV = click.argument("env")


def _interactive(no_input: bool) -> bool:
    return not no_input and sys.stdin.isatty() and sys.stderr.isatty()


def _check_inputs(factory, env: str, scenario: Path | None) -> None:
    """Bad input fails here, before anything is published, recorded or locked (exit 2)."""
    factory.config.env(env)
    if scenario is not None:
        from stageflow.local.simulator import load_scenario

        load_scenario(scenario)


def _outcome_json(outcome) -> dict:
    dep = outcome.deployment
    return {
        "deployment_id": dep.deployment_id,
        "environment": dep.environment,
        "version": dep.version,
        "previous_version": dep.previous_version,
        "phase": outcome.state.phase,
        "paused": outcome.paused,
        "weight": outcome.state.weight,
        "reason": outcome.state.reason,
        "deadline": outcome.state.deadline,
        "approved_by": [a["who"] for a in outcome.state.answers],
        "last_verdict": dep.verdicts[-1] if dep.verdicts else None,
    }


def report_outcome(factory, outcome) -> None:
    d = _outcome_json(outcome)
    if outcome.paused:
        human = (
            f"{d['environment']}: deployment {d['deployment_id']} (v{d['version']}) awaits approval at "
            f"{d['weight']}%: {d['reason']}\n  deadline: {d['deadline']}\n"
            f"  continue: stageflow approve {d['environment']} [--extend MINUTES | --skip-to-full]\n"
            f"  roll back: stageflow reject {d['environment']}"
        )
    else:
        human = f"{d['environment']}: v{d['version']} {d['phase']} ({d['reason']})"
    factory.reporter.result(human, d)


def register(cli: click.Group) -> None:
    _register_canary(cli)
    _register_continue(cli)
    _register_rollback(cli)
    _register_reads(cli)
    _register_unlock_and_demo(cli)


def _register_canary(cli: click.Group) -> None:
    @cli.command("canary")
    @ENV
    @click.option(
        "--scenario",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Local mode: the traffic scenario the simulator plays (default: healthy).",
    )
    @click.option("--commit", default=None, help="Commit being deployed (recorded).")
    @click.option("--no-input", is_flag=True, help="Never prompt; stop at approval pauses.")
    @click.option(
        "--report",
        "report_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the deployment's HTML report (timeline, checks, charts) here when the run ends.",
    )
    @EMERGENCY
    @EMERGENCY_REASON
    @click.pass_obj
    def canary_cmd(factory, env, scenario, commit, no_input, report_file, emergency, reason):
        """Publish the current code as a new version and ship it to ENV in canary steps."""
        from stageflow.commands.dora import report_after
        from stageflow.deploy import canary
        from stageflow.wiring import freeze_check

        _check_inputs(factory, env, scenario)
        why = emergency_reason(emergency, reason)
        overridden = freeze_check(factory, env, why)  # frozen: exit 2, nothing published or locked
        extra = {"emergency": {"reason": why, "freeze": overridden.to_json()}} if overridden else None
        with report_after(factory, env, report_file):
            res = canary.start(
                factory.environment(env),
                factory.config,
                scenario=scenario,
                commit=commit or _git_commit(factory),
                interactive=_interactive(no_input),
                extra=extra,
            )
        if res.outcome is None:
            factory.reporter.result(
                f"{env}: nothing to deploy: {res.published.reason}",
                {
                    "environment": env,
                    "phase": "no_change",
                    "reason": res.published.reason,
                    "version": res.published.previous_version,
                },
            )
            return
        report_outcome(factory, res.outcome)


def _register_continue(cli: click.Group) -> None:
    @cli.command("resume")
    @ENV
    @click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--no-input", is_flag=True)
    @click.pass_obj
    def resume_cmd(factory, env, scenario, no_input):
        """Continue a deployment in ENV whose run was killed, from its last recorded state."""
        from stageflow.deploy import canary

        _check_inputs(factory, env, scenario)
        ctx = factory.environment(env)
        report_outcome(
            factory, canary.run_cont(ctx, None, scenario=scenario, interactive=_interactive(no_input))
        )


def _register_rollback(cli: click.Group) -> None:
    @cli.command("rollback")
    @click.argument("env", required=False)
    @click.option("--to", "to", default=None, help="Version to restore (default: the last known good).")
    @click.option("--reason", default="manual rollback by on-call", help="Why (recorded and notified).")
    @click.option(
        "--from-alarm-event",
        "alarm_file",
        type=click.File("r"),
        default=None,
        help="A CloudWatch alarm notification as delivered by SNS (FILE or - for stdin).",
    )
    @click.option(
        "--infra",
        is_flag=True,
        help="Also re-apply the last good release's infrastructure from its recorded commit, then traffic.",
    )
    @click.option(
        "--allow-destroy", is_flag=True, help="--infra on a protected environment: allow deletions."
    )
    @click.pass_obj
    def rollback_cmd(factory, env, to, reason, alarm_file, infra, allow_destroy):
        """All traffic of ENV back on the last known good version, now. No analysis, no approval."""
        from stageflow.errors import UsageError
        from stageflow.rollback.cli import from_alarm_event, rollback

        if infra:
            return _rollback_infra(factory, env, to, alarm_file, allow_destroy, reason)
        if alarm_file is not None:
            results = from_alarm_event(
                alarm_file.read(),
                env,
                environments_for=lambda alarm: environments_for_alarm(factory, alarm),
                context_for=factory.environment,
                reporter=factory.reporter,
            )
        elif env is None:
            raise UsageError("rollback needs an environment", "stageflow rollback ENV [--to VERSION]")
        else:
            results = [rollback(factory.environment(env), to=to, reason=reason)]
        lines = [
            (
                f"{r.environment}: all traffic on v{r.to_version} (was {r.from_weights})"
                if r.changed
                else f"{r.environment}: another run moved all traffic to v{r.to_version} at the same time "
                "and recorded it; this run changed nothing"
                if r.moved_by_another_run
                else f"{r.environment}: already on v{r.to_version}; nothing changed"
            )
            for r in results
        ]
        factory.reporter.result(
            "\n".join(lines) or "no rollback needed", {"rollbacks": [r.to_json() for r in results]}
        )


def _rollback_infra(factory, env, to, alarm_file, allow_destroy, reason) -> None:
    from stageflow.errors import UsageError
    from stageflow.wiring import infra_rollback

    if env is None or to is not None or alarm_file is not None:
        raise UsageError(
            "--infra takes an environment and no --to or --from-alarm-event",
            "stageflow rollback ENV --infra [--allow-destroy]",
        )
    res = infra_rollback(factory, env, allow_destroy=allow_destroy, reason=reason)
    t = res.traffic
    what = (
        f"infrastructure of commit {res.commit} ({res.reapplied.headline})"
        if res.reapplied.applied
        else "no infrastructure change to roll back"
    )
    moved = (
        f"all traffic on v{t.to_version} (was {t.from_weights})"
        if t.changed
        else f"already on v{t.to_version}"
    )
    factory.reporter.result(f"{env}: {what}; {moved}", res.to_json())


def _register_reads(cli: click.Group) -> None:
    @cli.command("status")
    @ENV
    @click.pass_obj
    def status_cmd(factory, env):
        """The deployment in flight in ENV (or the last one): phase, step, weights, last verdicts."""
        from stageflow.deploy.status import status

        human, data = status(factory.environment(env))
        factory.reporter.result(human, data)

    @cli.command("history")
    @ENV
    @click.option("--limit", type=click.IntRange(1, 100), default=10)
    @click.pass_obj
    def history_cmd(factory, env, limit):
        """Recent deployments of ENV, newest first."""
        from stageflow.deploy.status import history_lines

        ctx = factory.environment(env)
        deps = ctx.history.list(limit=limit)
        # what happened outside deployments: rollbacks, broken locks, freezes, with who and why
        kinds = ("rollback", "infra_rollback", "lock_broken", "freeze", "unfreeze", "freeze_override")
        events = [e for e in ctx.history.events(limit=limit) if e.get("kind") in kinds]
        lines = history_lines(deps, events)
        factory.reporter.result(
            "\n".join(lines) or "no deployments",
            {"deployments": [d.to_json() for d in deps], "events": events},
        )


def _register_unlock_and_demo(cli: click.Group) -> None:
    @cli.command("unlock")
    @ENV
    @click.option("--reason", required=True, help="Why the lock is stale (recorded).")
    @click.option("--force", is_flag=True, help="Break it even though its holder looks alive (recorded).")
    @click.pass_obj
    def unlock_cmd(factory, env, reason, force):
        """Break a stale deploy lock on ENV (recorded with the reason). Refused (exit 6) while the
        holder is alive (its pid on this host, a fresh heartbeat from another) unless --force."""
        from stageflow.deploy.locks import unlock
        from stageflow.history import default_who, lock_holder_text

        ctx = factory.environment(env)
        res = unlock(ctx, reason, default_who(), ctx.clock.now(), force=force)  # the run clock
        held = res.broken
        human = f"{env}: lock of {lock_holder_text(held)} broken (recorded)" if held else f"{env}: not locked"
        if res.closed:
            human += f"; deployment {res.closed} closed as failed (no traffic had moved)"
        factory.reporter.result(human, {"broken": held, "closed": res.closed})

    @cli.command("demo")
    @click.option("--env", "env", default="dev", show_default=True)
    @click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.pass_obj
    def demo_cmd(factory, env, scenario):
        """The main job on the embedded default: deploy the sample service on the local AWS emulator."""
        from stageflow.pipeline import deploy

        deploy(factory.deploy_services(), env, scenario=scenario)


def _git_commit(factory) -> str | None:
    from stageflow import git

    return git.head(factory.config.root, short=12)


def environments_for_alarm(factory, alarm_name: str) -> list[str]:
    """Which environments list this alarm: in config, or in their outputs (remembered from this
    machine's applies first; Terraform is asked only when none of those names it)."""
    envs = factory.config.environments
    found = [name for name, env in envs.items() if alarm_name in env.gates.alarms]
    if found:
        return found
    for cached_only in (True, False):
        for name in envs:
            try:
                out = factory.outputs(name, cached_only=cached_only)
            except Exception:  # noqa: BLE001, S112 - an environment that is not built has no alarms
                continue
            if out is not None and alarm_name in out.alarm_names:
                found.append(name)
        if found:
            return found
    return found
