"""CLI: ``stageflow chaos ENV [--experiment NAME | --suite basic|full] [--file PATH]``.

Runs the environment's chaos suite (``chaos/experiments.toml``; see docs/testing.md): on the emulator
a real canary per experiment with the fault from the local runtime's hooks, on AWS the environment's FIS
experiment templates. Exit 0 when every experiment did what it expects, 4 otherwise (one line per
experiment: expected, happened), 2 for a bad experiments file or an unknown name.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from stageflow.errors import ReleaseRejected


def register(cli: click.Group) -> None:
    @cli.command("chaos")
    @click.argument("env_name", metavar="ENV")
    @click.option("--experiment", "experiment", default=None, help="Run only this experiment.")
    @click.option(
        "--suite", default=None, help="Run this suite (default: the environment's, [environments])."
    )
    @click.option(
        "--file",
        "plan_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Experiments file (default: chaos/experiments.toml, else the built-in suites).",
    )
    @click.pass_obj
    def chaos_cmd(factory, env_name: str, experiment: str | None, suite: str | None, plan_file: Path | None):
        """Run ENV's chaos experiments; pass only when each one does what it expects (exit 0, else 4)."""
        from stageflow.chaos.model import load_plan
        from stageflow.wiring import chaos_runner

        cfg = factory.config
        factory.env(env_name)  # unknown environment: exit 2 before anything starts
        plan = load_plan(cfg.root, plan_file)  # a bad file or name: exit 2 before anything changes
        chosen = plan.select(env_name, suite, experiment)
        t0 = time.perf_counter()
        runner = chaos_runner(factory, env_name)
        outcomes = []
        for exp in chosen:
            factory.reporter.info("chaos", env_name, f"{exp.name}: {exp.fault}, expects {exp.expect}")
            outcomes.append(runner.run(exp))
        failed = [o for o in outcomes if not o.ok]
        result = {
            "environment": env_name,
            "source": plan.source,
            "experiments": [o.to_json() for o in outcomes],
            "passed": not failed,
            "wall_seconds": round(time.perf_counter() - t0, 2),
        }
        not_run = sum(1 for o in outcomes if o.happened == "not_run")
        as_expected = len(outcomes) - len(failed) - not_run
        head = f"chaos {env_name}: {as_expected} of {len(outcomes)} experiments as expected"
        head += f", {not_run} not run here" if not_run else ""
        factory.reporter.result("\n".join([head, *(f"  {o.line()}" for o in outcomes)]), result)
        if failed:
            raise ReleaseRejected(
                f"chaos {env_name}: " + "; ".join(o.line() for o in failed),
                "the service did not behave as its experiments expect (docs/testing.md, the chaos stage)",
            )
