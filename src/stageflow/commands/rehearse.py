"""CLI: ``stageflow rehearse --scenario FILE [--env ENV] [--json] [--approvals auto|manual]``.

Runs the environment's real canary policy (steps, bakes, gates, approvals) against the local emulator
on a virtual clock, with the traffic simulator playing the scenario and the judge reading the metrics
back through the local metric source. A 60-minute prod canary rehearses in seconds. Exit 0 when
promoted, 4 when rolled back (format: scenarios/README.md, docs/judge.md).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import click

from stageflow.errors import ReleaseRejected

REHEARSAL_MARKER = "stageflow_rehearsal.txt"


def rehearsal_artifact(base, marker: str):
    """The service package plus a marker file, so every rehearsal publishes a new version."""
    from stageflow.packaging.lambda_zip import with_files

    return with_files(base, {REHEARSAL_MARKER: marker.encode()})


def _at(s: str | None) -> datetime | None:
    from stageflow.history import parse_iso

    return parse_iso(s) if s else None


def summarize(dep, scenario, *, paused: bool, alias_weights: dict[str, int]) -> dict:
    """The rehearsal result from the deployment's recorded transitions and verdicts."""
    first_traffic = next((_at(t.get("at")) for t in dep.transitions if (t.get("weight") or 0) > 0), None)
    decided = None
    for t in dep.transitions:
        if t.get("to") in ("rolling_back", "rolled_back", "succeeded", "failed"):
            decided = _at(t.get("at"))
            break
    last = dep.verdicts[-1] if dep.verdicts else None
    if dep.phase == "rolled_back":
        verdict = "rolled_back"
    elif dep.phase == "succeeded":
        verdict = "promoted"
    elif paused:
        verdict = "awaiting_approval"
    else:
        verdict = dep.phase
    if verdict == "rolled_back":
        reasons = list(last.get("reasons") or []) if last and last.get("decision") == "rollback" else []
        if not reasons:
            reasons = [dep.state.get("reason") or "rolled back"]
    else:
        reasons = [r.get("detail", "") for r in (last or {}).get("results", []) if r.get("detail")]
    minute = None
    if first_traffic is not None and decided is not None:
        minute = round((decided - first_traffic).total_seconds() / 60, 2)
    elif first_traffic is not None and verdict == "awaiting_approval" and last is not None:
        minute = round((_at(last["at"]) - first_traffic).total_seconds() / 60, 2)
    looks = dep.verdict_count
    extensions = sum(1 for t in dep.transitions if "extended" in (t.get("reason") or ""))
    return {
        "scenario": scenario.name,
        "expect": scenario.expect,
        "verdict": verdict,
        "matches_expectation": (
            None
            if scenario.expect is None or verdict not in ("promoted", "rolled_back")
            else (verdict == "promoted") == (scenario.expect == "promote")
        ),
        "decided_at_minute": minute,
        "final_weight": int(alias_weights.get(dep.version, 0)),
        "weights": alias_weights,
        "reasons": reasons,
        "source": last.get("source") if last else None,
        "looks": looks,
        "extensions": extensions,
        "deployment_id": dep.deployment_id,
        "environment": dep.environment,
        "version": dep.version,
        "previous_version": dep.previous_version,
    }


def _human(r: dict) -> str:
    head = (
        f"rehearse {r['environment']}: {r['scenario']}: {r['verdict']}"
        + (f" at minute {r['decided_at_minute']:g}" if r["decided_at_minute"] is not None else "")
        + f", v{r['version']} at {r['final_weight']}% (source {r['source']}, {r['looks']} looks, "
        f"{r['extensions']} extensions, {r['wall_seconds']:.1f} s wall)"
    )
    if r["expect"]:
        ok = {True: "as expected", False: "NOT as expected", None: "undecided"}[r["matches_expectation"]]
        head += f"; scenario expects {r['expect']}: {ok}"
    return "\n".join([head, *(f"  {line}" for line in r["reasons"])])


def register(cli: click.Group) -> None:
    @cli.command("rehearse")
    @click.option(
        "--scenario",
        "scenario_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Traffic scenario (JSON, see scenarios/README.md).",
    )
    @click.option(
        "--env", "env_name", default="prod", show_default=True, help="Whose canary policy to rehearse."
    )
    @click.option(
        "--approvals",
        type=click.Choice(["auto", "manual"]),
        default="auto",
        show_default=True,
        help="auto: approval pauses are granted at once; manual: stop at them like a real run.",
    )
    @click.option(
        "--report",
        "report_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the rehearsed deployment's HTML report (timeline, checks, charts) here.",
    )
    @click.pass_obj
    def rehearse_cmd(factory, scenario_path: Path, env_name: str, approvals: str, report_file: Path | None):
        """Rehearse ENV's canary policy against a traffic scenario on the local emulator (virtual clock).

        Exit 0 when the canary is promoted, 4 when it is rolled back."""
        from stageflow.deploy import canary
        from stageflow.local.simulator import load_scenario
        from stageflow.packaging.lambda_zip import build_packages

        sc = load_scenario(scenario_path)  # a bad file fails here, before anything changes
        if report_file is not None:
            from stageflow.commands.dora import writable_path

            report_file = writable_path(report_file)
        factory.require_local("rehearse")
        cfg = factory.config
        factory.env(env_name)  # unknown environment: exit 2 before anything starts
        t0 = time.perf_counter()
        base = build_packages(cfg).service  # the service zip the build stage writes (requirements in)
        artifact = rehearsal_artifact(base, f"{sc.name} seed={sc.seed} {time.time_ns()}")
        prompt = (lambda _question: True) if approvals == "auto" else (lambda _question: None)
        from stageflow.pipeline import ensure_environment

        ctx = ensure_environment(factory.deploy_services(), env_name)
        rejected: ReleaseRejected | None = None
        paused = False
        try:
            res = canary.start(
                ctx,
                cfg,
                artifact=artifact,
                scenario=scenario_path,
                commit="rehearsal",
                extra={"rehearsal": {"scenario": sc.name, "seed": sc.seed, "approvals": approvals}},
                approve_prompt=prompt,
                who="stageflow-rehearse",
            )
            paused = bool(res.outcome and res.outcome.paused)
        except ReleaseRejected as exc:
            rejected = exc
        dep = ctx.history.list(limit=1)[0]
        result = summarize(dep, sc, paused=paused, alias_weights=ctx.traffic.state().weights)
        result["wall_seconds"] = round(time.perf_counter() - t0, 2)
        result["approvals"] = approvals
        if report_file is not None:
            from stageflow.deployment_report.data import gather
            from stageflow.deployment_report.render import write_report

            write_report(gather(ctx.history, dep, ctx.env.gates), report_file)
            result["report"] = str(report_file)
        factory.reporter.result(_human(result), result)
        if rejected is not None:
            raise rejected
