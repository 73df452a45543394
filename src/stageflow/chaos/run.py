"""Run chaos experiments and judge them against what each one expects.

Locally (:class:`LocalChaos`) an experiment is a real canary of the service zip (plus a marker file, so
every experiment publishes a new version) on the environment's own canary policy and virtual clock,
with :class:`~stageflow.chaos.feed.InvokeFeed` driving real Invokes through the alias while the
experiment's fault sits on the canary version. What happened is what the canary did: rolled back or
promoted.

On AWS (:class:`FisChaos`) an experiment is the environment's FIS experiment template of the same name
(Terraform, ``infrastructure/modules/chaos``): started, watched until it ends; its stop conditions are
the environment's alarms. What happened: ``rollback`` when an alarm stopped it (the alarm fired; the
rollback function restores the alias on that alarm), ``within_gates`` when it ran to completion.

The stage passes (exit 0) only when every experiment's outcome is what it expects; otherwise exit 4
with one line per experiment that did not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from stageflow.chaos.model import Experiment
from stageflow.errors import EnvironmentFailure, ReleaseRejected

CHAOS_MARKER = "stageflow_chaos.txt"


@dataclass(frozen=True)
class Outcome:
    experiment: str
    fault: str
    expected: str  # rollback | within_gates
    happened: str  # rollback | within_gates | not_run | undecided
    detail: str
    deployment_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.happened == self.expected or self.happened == "not_run"

    def line(self) -> str:
        mark = (
            "ok"
            if self.happened == self.expected
            else ("not run" if self.happened == "not_run" else "FAILED")
        )
        return (
            f"{self.experiment}: {mark}: expected {self.expected.replace('_', ' ')}, "
            f"happened {self.happened.replace('_', ' ')} ({self.detail})"
        )

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def too_little_traffic(env, exp: Experiment) -> str:
    """Why the first canary step would see fewer canary invocations than the gates need, or ''."""
    steps = [s for s in env.canary.steps if s.weight < 100 and s.bake_minutes > 0]
    if not steps:
        return ""
    first = steps[0]
    canary = exp.invocations_per_minute * first.weight / 100 * first.bake_minutes
    need = env.gates.min_invocations
    if canary >= need:
        return ""
    return (
        f"{exp.invocations_per_minute}/min at {first.weight}% for {first.bake_minutes:g} min is about "
        f"{canary:.0f} canary invocations, the gates need {need}: raise invocations_per_minute"
    )


class LocalChaos:
    """One canary per experiment on the emulator, the fault from the local runtime's hooks."""

    def __init__(self, ctx, cfg, *, artifact, feed_for: Callable[[Experiment, datetime], object],
                 supports: Callable[[Experiment], bool]):  # fmt: skip
        self.ctx, self.cfg, self.artifact = ctx, cfg, artifact
        self.feed_for, self.supports = feed_for, supports

    def run(self, exp: Experiment) -> Outcome:
        from stageflow.deploy import canary
        from stageflow.packaging.lambda_zip import with_files

        if not self.supports(exp):
            return Outcome(exp.name, exp.fault, exp.expect, "not_run",
                           f"the local runtime cannot inject {exp.fault}; FIS runs it on AWS")  # fmt: skip
        feeds: list = []

        def feed(_scenario, start):
            feeds.append(self.feed_for(exp, start))
            return feeds[-1]

        self.ctx.feed_for = feed
        # a marker file, so every experiment publishes a new version (the canary the fault goes on)
        artifact = with_files(self.artifact, {CHAOS_MARKER: f"{exp.name} {time.time_ns()}".encode()})
        happened, detail = "undecided", ""
        inconclusive: list[str] = []
        thin = too_little_traffic(self.ctx.env, exp)
        if thin:
            self.ctx.reporter.info("chaos", self.ctx.env.name, f"{exp.name}: {thin}")

        def prompt(question: str) -> bool:
            # the environment's approvals are granted (an experiment is not a release); a canary the gates
            # could not decide is refused: never promoted on no data
            if "inconclusive" in question:
                inconclusive.append(question)
                return False
            return True

        try:
            res = canary.start(
                self.ctx, self.cfg, artifact=artifact, commit="chaos", who="stageflow-chaos",
                extra={"chaos": {"experiment": exp.name, "fault": exp.fault, "expect": exp.expect}},
                approve_prompt=prompt,
            )  # fmt: skip
            if res.outcome is None:
                detail = "nothing was published"
            elif res.outcome.state.phase == "succeeded":
                happened, detail = "within_gates", "the canary was promoted"
            else:
                detail = f"the canary ended {res.outcome.state.phase}"
        except ReleaseRejected as exc:
            happened, detail = "rollback", exc.message
            if inconclusive:
                happened = "undecided"
                detail = f"the gates never had enough data ({thin or 'too few invocations'}): {exc.message}"
        finally:
            for f in feeds:
                f.close()
        dep = self.ctx.history.list(limit=1)[0]
        if feeds:
            seen = feeds[-1].summary()["by_version"]
            counts = ", ".join(
                f"v{v} {c['invocations']} inv/{c['errors']} err" for v, c in sorted(seen.items())
            )
            detail = f"{detail}; traffic {counts}" if counts else detail
        return Outcome(exp.name, exp.fault, exp.expect, happened, detail, dep.deployment_id)


class FisChaos:
    """The environment's FIS experiment templates (tagged ``stageflow:experiment``), run and watched."""

    def __init__(self, fis, service: str, env_name: str, *, poll_s: float = 15.0, sleep=time.sleep):
        self.fis, self.service, self.env_name = fis, service, env_name
        self.poll_s, self.sleep = poll_s, sleep

    def template_id(self, name: str) -> str:
        token = None
        while True:
            page = self.fis.list_experiment_templates(**({"nextToken": token} if token else {}))
            for t in page.get("experimentTemplates", []):
                tags = t.get("tags") or {}
                if (tags.get("stageflow:experiment"), tags.get("stageflow:environment"),
                        tags.get("stageflow:service")) == (name, self.env_name, self.service):  # fmt: skip
                    return t["id"]
            token = page.get("nextToken")
            if not token:
                raise EnvironmentFailure(
                    f"no FIS experiment template for {name!r} in {self.env_name}",
                    "apply the environment's Terraform (infrastructure/modules/chaos) first",
                )

    def run(self, exp: Experiment) -> Outcome:
        tid = self.template_id(exp.name)
        started = self.fis.start_experiment(experimentTemplateId=tid, tags={"stageflow:chaos": exp.name})
        eid = started["experiment"]["id"]
        deadline = time.monotonic() + exp.duration_minutes * 60 + 600
        while True:
            state = self.fis.get_experiment(id=eid)["experiment"]["state"]
            status, reason = state.get("status"), state.get("reason", "")
            if status in ("completed", "stopped", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                self.fis.stop_experiment(id=eid)
                return Outcome(exp.name, exp.fault, exp.expect, "undecided", f"FIS {eid} did not end in time")
            self.sleep(self.poll_s)
        if status == "completed":
            happened = "within_gates"
        elif status == "stopped" and "stop condition" in reason.lower():
            happened = "rollback"
        else:
            happened = "undecided"
        return Outcome(
            exp.name, exp.fault, exp.expect, happened, f"FIS {eid} {status}: {reason}".rstrip(": ")
        )
