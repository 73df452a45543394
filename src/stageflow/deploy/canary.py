"""A canary deploy, start to finish: resources → publish → lock → record → drive → release.

``start`` begins a new deployment; ``run_cont`` continues the one in flight (resume, approve, reject).
The CLI commands and nox sessions are thin callers of these functions, on the environment the
composition root wired (:class:`Context`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from stageflow.clock import Clock, VirtualClock
from stageflow.config import Config, EnvironmentConfig
from stageflow.deploy import machine as m
from stageflow.deploy.approvals import answer_problem
from stageflow.deploy.decision import package as decision_package
from stageflow.deploy.driver import Driver, RunOutcome
from stageflow.deploy.gates import GateReader
from stageflow.deploy.publish import Published
from stageflow.deploy.records import Deployment, Transition, new_deployment_id
from stageflow.deploy.release import (
    Member,
    Release,
    Versions,
    functions_record,
    previous_label,
    release_label,
)
from stageflow.errors import AwsError, EnvironmentFailure, ReleaseRejected, RollbackFailed, UsageError
from stageflow.history.locks import default_who
from stageflow.incidents.model import from_deployment, open_incident
from stageflow.isotime import iso, parse_iso
from stageflow.metrics.interface import TrafficFeed
from stageflow.outputs import DeployOutputs
from stageflow.packaging.lambda_zip import LambdaZip
from stageflow.ports import (
    AliasRouter,
    DeploymentHistory,
    FunctionCheck,
    Notifier,
    ProgressObserver,
    Publisher,
)

DEFAULT_SCENARIO = Path(__file__).resolve().parents[1] / "data" / "healthy.json"


@dataclass
class Context:
    """One environment, wired by the composition root (``Factory.environment``): the ports the core
    talks to. Unit tests build one from the in-memory fakes in ``tests/fakes.py``."""

    env: EnvironmentConfig
    service: str
    outputs: DeployOutputs
    history: DeploymentHistory
    traffic: AliasRouter
    publisher: Publisher
    function_check: FunctionCheck  # invokes a version before it takes traffic, the alias after (smoke)
    notifier: Notifier
    gates: GateReader
    reporter: ProgressObserver
    clock_for: Callable[[], Clock]  # the run's clock (seam: system vs virtual)
    feed_for: Callable[[Path | None, datetime], TrafficFeed | None]  # seam: simulator vs real traffic
    _clock: Clock | None = field(default=None, init=False, repr=False)

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = self.clock_for()
        return self._clock

    delivery: Callable[[Deployment], object] | None = None  # Stageflow/Delivery metrics when a run ends
    # several functions (wired by the root): every one's ports; None: the one function of the fields above
    functions: Release | None = None
    # the approval notice's links (report URL presigned until the deadline, dashboard), from the root
    decision_links: Callable[[Deployment, m.State], Mapping[str, str | None]] | None = None

    @property
    def release(self) -> Release:
        """Every function of the release; a one-function service's is built from the ports above."""
        if self.functions is not None:
            return self.functions
        one = Member(
            self.traffic.function,
            self.traffic,
            publisher=self.publisher,
            check=self.function_check,
            gates=self.gates,
            feed_for=self.feed_for,
        )
        return Release((one,))


def make_driver(
    ctx: Context,
    *,
    scenario: Path | None = None,
    interactive: bool = False,
    approve_prompt=None,
    pre_approved_by: str | None = None,
) -> Driver:
    prompt = approve_prompt or (_tty_prompt if interactive else None)
    prompt_who = default_who() if approve_prompt is None else "rehearsal"
    rel, now = ctx.release, ctx.clock.now()
    feeds = None
    if not rel.single:
        feeds = {mem.key: (mem.feed_for or ctx.feed_for)(scenario, now) for mem in rel.members}
    return Driver(
        env=ctx.env,
        history=ctx.history,
        traffic=ctx.traffic,
        gates=ctx.gates,
        notifier=ctx.notifier,
        clock=ctx.clock,
        reporter=ctx.reporter,
        pre_traffic=ctx.function_check,
        feed=ctx.feed_for(scenario, now) if rel.single else None,
        approve_prompt=prompt,
        prompt_who=prompt_who,
        prompt_waives=approve_prompt is not None,  # rehearsals and chaos answer for the people
        stop_after=_failpoint(),
        pre_approved_by=pre_approved_by,
        release=None if rel.single else rel,
        feeds=feeds,
        decision=lambda dep, st: decision_package(
            dep, st, ctx.decision_links(dep, st) if ctx.decision_links else None
        ),
    )


def _tty_prompt(question: str) -> bool | None:
    import click

    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    return click.confirm(question, default=False, err=True)


def _failpoint():
    """STAGEFLOW_FAILPOINT=kill-after-record:N kills this process (SIGKILL) right after the N-th
    recorded state of a run: the crash tests use it to stop a real deploy at every step boundary."""
    spec = os.environ.get("STAGEFLOW_FAILPOINT", "")
    if not spec.startswith("kill-after-record:"):
        return None
    target = int(spec.split(":", 1)[1])
    seen = {"n": 0}

    def check(_state: m.State) -> bool:
        seen["n"] += 1
        if seen["n"] >= target:
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    return check


@dataclass
class StartResult:
    published: Published
    outcome: RunOutcome | None  # None: nothing to deploy


def start(ctx: Context, cfg: Config, *, artifact: LambdaZip | None = None, **kwargs) -> StartResult:
    """CLI/pipeline entry: the commit's facts and the artifact, then :func:`run_start` on ``ctx`` (the
    wired environment; the pipeline passes the one it applied Terraform for)."""
    from stageflow.dora.commit import shipped_change_facts, shipped_pathspecs

    # the commit that last changed what ships (or "uncommitted"), its time and whether it is a hotfix,
    # from git, for lead time and change failure rate
    facts = shipped_change_facts(cfg.root, kwargs.get("commit"), shipped_pathspecs(cfg))
    kwargs["extra"] = {**facts, **(kwargs.get("extra") or {})}
    if artifact is None:  # the service zip the build stage writes (requirements installed)
        from stageflow.packaging.lambda_zip import build_packages

        artifact = build_packages(cfg).service
    return run_start(ctx, artifact, **kwargs)


def run_start(
    ctx: Context,
    artifact: LambdaZip,
    *,
    scenario: Path | None = None,
    commit: str | None = None,
    extra: dict | None = None,
    interactive: bool = False,
    who: str | None = None,
    approve_prompt=None,  # (question) -> True/False/None; rehearsals auto-approve with it
    plan_hash: str | None = None,  # sha256 of the Terraform plan applied before this deploy
    pre_approved_by: str | None = None,  # who approved upstream (CodePipeline's approval before prod)
) -> StartResult:
    """A new deployment: lock → record → publish (only when something that reaches traffic changed)
    → drive the canary → release. Every transition is recorded before the next action."""
    clock = ctx.clock
    now = clock.now()
    dep = Deployment(
        deployment_id=new_deployment_id(now),
        environment=ctx.env.name,
        service=ctx.service,
        version="",
        previous_version=None,
        status="in_progress",
        phase="publishing",
        started_at=iso(now),
        who=who or default_who(),
        commit=commit,
        artifact_digest=artifact.digest,
        plan_hash=plan_hash,
        extra={
            **(extra or {}),
            "resources": ctx.outputs.source,
            "clock": "virtual" if isinstance(clock, VirtualClock) else "system",
        },
    )
    ctx.history.acquire_lock(dep.deployment_id, dep.who, now)
    try:
        dep, pub = _publish(ctx, dep, artifact)
    except BaseException:
        _close_unpublished(ctx, dep.deployment_id)
        raise
    if dep.phase == "no_change":
        return StartResult(pub, None)
    driver = make_driver(
        ctx,
        scenario=scenario,
        interactive=interactive,
        approve_prompt=approve_prompt,
        pre_approved_by=pre_approved_by,
    )
    outcome = driver.run(dep)
    return StartResult(pub, _finish(ctx, outcome))


def _publish(ctx: Context, dep: Deployment, artifact: LambdaZip) -> tuple[Deployment, Published]:
    """Record the deployment, publish the artifact as every function's new version (all published
    before any traffic moves: a failure here leaves every alias where it was), record the versions (or
    that nothing changed, the run then ends and frees the lock)."""
    clock, env_name, rel = ctx.clock, ctx.env.name, ctx.release
    ctx.history.create(dep)
    description = f"stageflow {dep.deployment_id} {dep.commit or ''}".strip()
    pubs = [(mem, mem.publisher.publish(artifact, description=description)) for mem in rel.members]
    pub = next((p for _m, p in pubs if p.version is not None), pubs[0][1])
    reason = pub.reason if rel.single else "; ".join(f"{mem.key}: {p.reason}" for mem, p in pubs)
    if pub.version is None:
        dep = ctx.history.update(
            dep,
            status="succeeded",
            phase="no_change",
            ended_at=iso(clock.now()),
            version=pub.previous_version,
            previous_version=pub.previous_version,
            transition=Transition(iso(clock.now()), "publishing", "no_change", reason),
        )
        ctx.history.release_lock(dep.deployment_id)
        ctx.reporter.info("publish", env_name, f"nothing to deploy: {reason}")
        return dep, pub
    if os.environ.get("STAGEFLOW_FAILPOINT") == "kill-after-publish":
        os.kill(os.getpid(), signal.SIGKILL)
    for mem, p in pubs:
        who = "" if rel.single else f"{mem.key}: "
        what = f"{p.reason} (was v{p.previous_version}, code {p.code_sha256[:12]}…)"
        ctx.reporter.info("publish", env_name, who + (what if p.version else f"unchanged, {p.reason}"))
    versions = [
        (mem, Versions(mem.key, mem.function, mem.alias, p.previous_version, p.version or p.previous_version))
        for mem, p in pubs
    ]
    dep = ctx.history.update(
        dep,
        version=pub.version,
        previous_version=pub.previous_version,
        functions=functions_record(versions),
        phase="pending",
        transition=Transition(iso(clock.now()), "publishing", "pending", reason),
    )
    return dep, pub


def _close_unpublished(ctx: Context, dep_id: str) -> None:
    """Nothing moved yet: leave no lock behind for a failure before the canary began."""
    clock = ctx.clock
    current = ctx.history.get(dep_id)
    if current is not None and current.phase in ("publishing",):
        ctx.history.update(
            current,
            status="failed",
            phase="failed",
            ended_at=iso(clock.now()),
            transition=Transition(
                iso(clock.now()), "publishing", "failed", "failed before any traffic moved"
            ),
        )
    ctx.history.release_lock(dep_id)


def _in_flight(ctx: Context, env_name: str, answering: bool = False) -> Deployment:
    dep = ctx.history.in_flight()
    if dep is None:
        newest = next(iter(ctx.history.list(limit=1)), None)
        if answering and newest is not None and newest.status in ("rolled_back", "failed", "succeeded"):
            # a late answer: say what already happened (the deadline acted, someone rejected, ...)
            raise UsageError(
                f"too late: deployment {newest.deployment_id} already ended {newest.status} at "
                f"{newest.ended_at}: {newest.state.reason}; this answer changed nothing",
                f"see: stageflow status {env_name}",
            )
        raise UsageError(f"no deployment in flight in {env_name}", f"see: stageflow status {env_name}")
    return dep


@dataclass(frozen=True)
class Answer:
    """A person's answer at a pause: ``approve`` (option ``approve`` | ``extend`` | ``skip_to_full``) or
    ``reject``; ``who`` is the caller's identity (the composition root resolves it), ``roles`` what
    ``[approvers]`` maps it to."""

    kind: str  # "approve" | "reject"
    who: str
    option: str = "approve"
    minutes: float | None = None
    roles: tuple[str, ...] = ()
    reason: str = ""
    waived: bool = False  # given upstream for the people (CodePipeline's approval action): the rule is met


def deadline_of(dep: Deployment, env: EnvironmentConfig) -> datetime | None:
    """When the pause of ``dep`` ends by itself: its recorded deadline, or (records written before
    deadlines were recorded) the pause's start plus the pause kind's setting."""
    state = dep.state
    if state.phase != "awaiting_approval":
        return None
    if state.deadline:
        return parse_iso(state.deadline)
    if not dep.transitions:
        return None
    minutes = env.approvals.deadline_minutes(state.approval_for or "")
    return parse_iso(dep.transitions[-1].at) + timedelta(minutes=minutes)


def _answer_event(ctx: Context, dep: Deployment, answer: Answer, now: datetime) -> m.Event:
    """The answer as the machine's event, or exit 2 (nothing changes) when it cannot count."""
    state, env_name = dep.state, ctx.env.name
    if state.phase != "awaiting_approval":
        raise UsageError(
            f"deployment {dep.deployment_id} is {state.phase}, not awaiting approval",
            f"see: stageflow status {env_name}",
        )
    if answer.kind == "reject":
        return m.Rejected(now, answer.who, answer.reason or "rejected")
    event = m.Approved(
        now,
        answer.who,
        answer.option,
        answer.minutes,
        tuple(answer.roles),
        answer.reason,
        answer.waived,  # type: ignore[arg-type]
    )
    problem = answer_problem(state, event)
    if problem:
        raise UsageError(f"{env_name}: {problem}; nothing changed", f"see: stageflow status {env_name}")
    return event


def run_cont(
    ctx: Context,
    event_kind: str | None = None,
    *,
    scenario: Path | None = None,
    who: str | None = None,
    reason: str = "",
    interactive: bool = False,
    answer: Answer | None = None,
) -> RunOutcome:
    """Continue the deployment in flight: resume (event_kind None), approve or reject. A pause whose
    deadline passed ends by itself here (recorded) before anything else; an answer to it is then
    refused (exit 2) saying what happened."""
    env_name = ctx.env.name
    if answer is None and event_kind in ("approve", "reject"):
        answer = Answer(event_kind, who or default_who(), reason=reason)
    dep = _in_flight(ctx, env_name, answering=answer is not None)
    clock = ctx.clock
    who = answer.who if answer is not None else (who or default_who())
    if dep.phase == "publishing" or not dep.version:
        # Killed before the canary began: no traffic moved. Close it and free the lock.
        ctx.history.update(
            dep,
            status="failed",
            phase="failed",
            ended_at=iso(clock.now()),
            transition=Transition(
                iso(clock.now()),
                dep.phase,
                "failed",
                "run stopped before publishing finished; no traffic moved",
            ),
        )
        ctx.history.release_lock(dep.deployment_id)
        raise UsageError(
            f"deployment {dep.deployment_id} stopped before publishing finished; no traffic moved",
            f"start again: stageflow canary {env_name}",
        )
    now = clock.now()
    deadline = deadline_of(dep, ctx.env)
    late = deadline is not None and now >= deadline
    event: m.Event | None = None
    if late:
        ctx.reporter.info("canary", env_name, f"the approval pause passed its deadline ({iso(deadline)})")
        event = m.DeadlinePassed(now)
    elif answer is not None:
        event = _answer_event(ctx, dep, answer, now)
    lock = ctx.history.lock()
    if lock is None or lock.get("holder") == dep.deployment_id:
        # take it (again): the lock then names this process, so a killed run's lock looks stale
        ctx.history.acquire_lock(dep.deployment_id, who, clock.now())
    driver = make_driver(ctx, scenario=scenario, interactive=interactive)
    if late and answer is not None:
        try:
            outcome = _finish(ctx, driver.run(dep, event))
        except (ReleaseRejected, RollbackFailed, AwsError) as exc:
            what = exc.one_line()
        else:
            what = f"{outcome.state.phase}: {outcome.state.reason}"
        raise UsageError(
            f"too late: the approval deadline of deployment {dep.deployment_id} passed at {iso(deadline)} "
            f"— {what}; this {answer.kind} changed nothing",
            f"see: stageflow status {env_name}",
        )
    return _finish(ctx, driver.run(dep, event))


def _finish(ctx: Context, outcome: RunOutcome) -> RunOutcome:
    state, dep = outcome.state, outcome.deployment
    if state.terminal:
        ctx.history.release_lock(dep.deployment_id)
        if ctx.delivery is not None:
            ctx.delivery(dep)  # never raises on AWS errors
        if state.phase in ("rolled_back", "failed") and state.step >= 0:
            # traffic had moved: every such rollback (or failed rollback) is an incident
            open_incident(ctx.history, ctx.notifier, from_deployment(dep, ctx.clock.now()))
    new, old = release_label(dep), previous_label(dep)
    if state.phase == "rolled_back" and state.step < 0:
        # never shifted (its pre-traffic check failed, or rejected before the canary): nothing moved
        kind = EnvironmentFailure if state.fault else ReleaseRejected
        raise kind(
            f"{new} rejected in {dep.environment}: {state.reason}",
            f"no traffic moved: all traffic stays on {old}",
        )
    if state.phase == "rolled_back" and state.fault:
        raise AwsError(
            f"{new} rolled back in {dep.environment}: {state.reason}",
            f"all traffic is on {old}; when AWS answers again deploy again: "
            f"stageflow canary {dep.environment}",
        )
    if state.phase == "rolled_back":
        reasons = state.reason
        raise ReleaseRejected(
            f"{new} rolled back in {dep.environment}: {reasons}",
            f"all traffic is on {old}",
        )
    if state.phase == "failed":
        raise RollbackFailed(
            f"deployment {dep.deployment_id} failed: {state.reason}",
            f"page a person; inspect: stageflow status {dep.environment}",
        )
    return outcome
