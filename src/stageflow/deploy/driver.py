"""The driver: performs the state machine's actions through injected parts and records every
transition in the history before the next action."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stageflow.clock import Clock
from stageflow.config import EnvironmentConfig
from stageflow.deploy import machine as m
from stageflow.deploy.decision import lines as decision_lines
from stageflow.deploy.gates import GateReader, combine_verdicts, verdict_minutes, verdict_results
from stageflow.deploy.records import Deployment, Transition, VerdictRecord, status_for
from stageflow.deploy.release import Member, Release, Versions, at_once
from stageflow.deploy.traffic import AliasChanged
from stageflow.history.dynamo import ConcurrentUpdate
from stageflow.isotime import iso, parse_iso
from stageflow.metrics.interface import TrafficFeed, Verdict
from stageflow.notify import Message
from stageflow.ports import AliasRouter, DeploymentHistory, FunctionCheck, Notifier, ProgressObserver
from stageflow.report import BakeProgress
from stageflow.rollback.core import LostRace, RestoreFailed, Retry, restore


@dataclass
class RunOutcome:
    deployment: Deployment
    state: m.State
    paused: bool = False  # stopped at an approval pause; run `stageflow approve` to continue
    verdicts: list[dict] = field(default_factory=list)


@dataclass
class Driver:
    env: EnvironmentConfig
    history: DeploymentHistory
    traffic: AliasRouter
    gates: GateReader
    notifier: Notifier
    clock: Clock
    reporter: ProgressObserver
    pre_traffic: FunctionCheck  # the new version, invoked before any traffic moves
    feed: TrafficFeed | None = None  # local mode: the traffic simulator
    approve_prompt: Callable[[str], bool | None] | None = None  # interactive approvals on a TTY
    stop_after: Callable[[m.State], bool] | None = None  # tests: stop (as if killed) after recording
    pre_approved_by: str | None = None  # the approval before the canary was given upstream (CodePipeline)
    prompt_who: str = "prompt"  # whose answer the prompt gives
    prompt_waives: bool = False  # a programmatic prompt (rehearsal, chaos) stands in for the people
    rollback_attempts: int = 3  # tries of the alias restore (each with botocore's own retries)
    rollback_retry_seconds: float = 5.0  # wait between them (doubles), on the run's clock
    # several functions: every one of them, with each one's traffic feed; None: the one function above
    release: Release | None = None
    feeds: Mapping[str, TrafficFeed | None] | None = None
    # the approval notice's decision package (deploy/decision.py) with the root's links; None: none
    decision: Callable[[Deployment, m.State], Mapping] | None = None
    _stop_requested: bool = field(default=False, init=False, repr=False)
    _rollback_tried: list[str] = field(default_factory=list, init=False, repr=False)

    @property
    def rel(self) -> Release:
        if self.release is not None:
            return self.release
        one = Member(self.traffic.function, self.traffic, check=self.pre_traffic, gates=self.gates)
        return Release((one,))

    def _active(self, dep: Deployment) -> list[tuple[Member, Versions]]:
        """The functions this deployment moves: the one function, or every one with a new version."""
        rel = self.rel
        return rel.versions(dep) if rel.single else rel.changed(dep)

    def _feed(self, member: Member) -> TrafficFeed | None:
        return self.feeds.get(member.key) if self.feeds is not None else self.feed

    # -- recording ----------------------------------------------------------------------------
    def _record(
        self, dep: Deployment, old: m.State, new: m.State, why: str, extra: dict | None = None
    ) -> Deployment:
        changes: dict = dict(state=new, phase=new.phase, status=status_for(new.phase))
        if extra:
            changes["extra"] = {**dep.extra, **extra}
        if new.terminal:
            changes["ended_at"] = iso(self.clock.now())
        if old != new:
            changes["transition"] = Transition.of(iso(self.clock.now()), old, new, why)
        return self.history.update(dep, **changes)

    def _notify(self, dep: Deployment, action: m.Notify, state: m.State, reasons=()) -> None:
        text, package = action.message, None
        if action.kind == "approval_needed" and self.decision is not None:
            try:
                package = dict(self.decision(dep, state))
            except Exception as exc:  # noqa: BLE001 - a notice without its package beats none
                self.reporter.warn(f"approval notice: no decision package ({type(exc).__name__}: {exc})")
            else:
                text = "\n".join([text, *decision_lines(package)])
        self.notifier.send(
            Message(
                kind=action.kind,
                environment=dep.environment,
                service=dep.service,
                deployment_id=dep.deployment_id,
                text=text,
                data={
                    **({"decision": package} if package is not None else {}),
                    "version": dep.version,
                    "previous_version": dep.previous_version,
                    "phase": state.phase,
                    "weight": state.weight,
                    "reasons": list(reasons),
                    "last_verdict": dep.verdicts[-1] if dep.verdicts else None,
                    **({"functions": dict(dep.functions)} if not self.rel.single else {}),
                    **(
                        {"tried": list(self._rollback_tried), "page": True}
                        if action.kind == "rollback_failed"
                        else {}
                    ),
                },
            )
        )

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, dep: Deployment, event: m.Event | None = None) -> RunOutcome:
        """Drive ``dep`` from its recorded state (optionally applying ``event`` first) until it is
        terminal or waits for a person."""
        self._stop_requested = False
        state = dep.state
        if event is not None:
            dep, state, actions = self._step(dep, state, event)
        else:
            actions = m.actions_for(state)  # pending: the pre-traffic check first
        try:
            return self._loop(dep, state, actions)
        except ConcurrentUpdate:
            # Someone else changed the record: on-call rolled back, or another process resumed it.
            fresh = self.history.get(dep.deployment_id)
            if fresh is None:
                raise
            fresh_state = fresh.state
            if not fresh_state.terminal:
                raise
            self.reporter.info(
                "canary",
                dep.environment,
                f"stopped: the deployment was ended elsewhere ({fresh_state.phase}: {fresh_state.reason})",
            )
            return RunOutcome(fresh, fresh_state)

    def _loop(self, dep: Deployment, state: m.State, actions: list[m.Action]) -> RunOutcome:
        last_reasons: tuple[str, ...] = ()
        while True:
            if self._stop_requested:
                return RunOutcome(dep, state, paused=False)
            next_event: m.Event | None = None
            for action in actions:
                match action:
                    case m.Notify():
                        self._notify(dep, action, state, last_reasons)
                    case m.CheckBeforeTraffic():
                        next_event = self._pre_traffic(dep)
                    case m.SetWeight(weight=w):
                        next_event = self._set_weight(dep, w)
                    case m.Observe():
                        dep, next_event, last_reasons = self._observe(dep, state, action)
                    case m.RollBack(reason=why):
                        next_event = self._roll_back(dep, why)
                    case m.AwaitApproval(gate=gate):
                        next_event = self._await_approval(dep, state, gate)
                        if next_event is None:
                            return RunOutcome(dep, state, paused=True)
            if next_event is None:
                return RunOutcome(dep, state)
            dep, state, actions = self._step(dep, state, next_event)

    def _step(
        self, dep: Deployment, state: m.State, event: m.Event
    ) -> tuple[Deployment, m.State, list[m.Action]]:
        new, actions = m.transition(state, event, self.env.canary, self.env.approvals)
        if new != state:
            checked = isinstance(event, m.PreTrafficPassed | m.PreTrafficFailed)
            extra = {"pre_traffic": dict(event.result)} if checked else None
            if isinstance(event, m.Approved | m.Rejected | m.DeadlinePassed):
                # every answer (and a deadline acting) in the record, with the transition it caused
                extra = {"approvals": [*dep.extra.get("approvals", ()), _answer_record(event, state, new)]}
            dep = self._record(dep, state, new, new.reason, extra)
            if self.stop_after is not None and self.stop_after(new):
                self._stop_requested = True
            if new.phase != state.phase or new.step != state.step:
                self.reporter.info("canary", dep.environment, f"{new.phase}: {new.reason}")
        return dep, new, actions

    # -- actions ----------------------------------------------------------------------------------
    def _pre_traffic(self, dep: Deployment) -> m.Event:
        """Invoke every new version with its own function's smoke event (CodeDeploy's
        BeforeAllowTraffic): the answers decide whether the canary begins; one failing rejects the
        release. Nothing moves here; the result is recorded with the transition it causes, before
        anything else happens."""
        active = self._active(dep)
        # at once, each in its own execution environment: the release waits for the slowest cold start,
        # not their sum; the answers are judged and reported in the release's order
        answers = at_once([lambda c=mem.check, q=str(v.to_version): c.check(q) for mem, v in active])
        pairs = zip(active, answers, strict=True)
        looks = [self._check_one(dep, mem, str(v.to_version), a) for (mem, v), a in pairs]
        if self.rel.single:
            return looks[0]
        if not looks:
            return m.PreTrafficPassed(self.clock.now(), "no function has a new version", {})
        failed = [e for e in looks if isinstance(e, m.PreTrafficFailed)]
        first = failed[0] if failed else looks[0]
        result = {**dict(first.result), "functions": [dict(e.result) for e in looks]}
        if failed:
            fault = "; ".join(e.fault for e in failed if e.fault)
            why = "; ".join(e.reason for e in failed)
            return m.PreTrafficFailed(self.clock.now(), why, result, fault=fault)
        summary = "; ".join(e.summary for e in looks if isinstance(e, m.PreTrafficPassed))
        return m.PreTrafficPassed(self.clock.now(), summary, result)

    def _check_one(self, dep: Deployment, member: Member, version: str, res) -> m.Event:
        """One function's new version, invoked with its smoke event: its answer (or what it raised)."""
        check = member.check
        if isinstance(res, Exception):
            failure = _environment_failure(res)
            if failure is None:
                raise res  # a bug, not a failed call
            why = failure.one_line()
            self.reporter.warn(
                f"pre-traffic {dep.environment}: {check.function}:{version} not checked: {why}"
            )
            result = {"function": check.function, "qualifier": version, "status": "error", "reason": why}
            if not self.rel.single:
                why = f"{check.function}:{version} not checked: {why}"
            return m.PreTrafficFailed(self.clock.now(), why, result, fault=why)
        self.reporter.info("pre-traffic", dep.environment, res.line())
        if res.ok:
            return m.PreTrafficPassed(self.clock.now(), res.line(), res.to_json())
        for line in (getattr(res, "log_tail", "") or "").strip().splitlines()[-5:]:
            self.reporter.child(f"  {line}")
        return m.PreTrafficFailed(self.clock.now(), res.line(), res.to_json())

    def _still_ours(self, dep: Deployment) -> None:
        """Before moving traffic: the record must be as we last wrote it (no rollback meanwhile)."""
        fresh = self.history.get(dep.deployment_id)
        if fresh is None or fresh.seq != dep.seq:
            raise ConcurrentUpdate(f"deployment {dep.deployment_id} was changed by another run")

    def _set_weight(self, dep: Deployment, weight: int) -> m.Event:
        """Every function's alias to ``weight`` on its new version, one after the other (the recorded
        weight is the target: a resume sets every function to it again)."""
        self._still_ours(dep)
        rel = self.rel
        for member, v in self._active(dep):
            stable, canary = v.from_version, v.to_version
            try:
                alias = member.traffic.set_canary(stable, canary, weight)
            except AliasChanged as exc:  # lost the race to a rollback (RevisionId): leave the alias, stop
                raise ConcurrentUpdate(f"deployment {dep.deployment_id}: {exc.one_line()}") from None
            except Exception as exc:
                failure = _environment_failure(exc)
                if failure is None:
                    raise  # a bug, not a failed call
                why = failure.one_line()
                where = "" if rel.single else f" of {member.function}"
                self.reporter.warn(f"canary {dep.environment}: alias shift{where} to {weight}% failed: {why}")
                return m.ShiftFailed(self.clock.now(), weight, why)
            self.reporter.info(
                "canary",
                dep.environment,
                f"weight {weight}% → {rel.label(member, canary)} (alias {member.alias}: {alias.weights})",
            )
        return m.WeightSet(self.clock.now(), weight)

    def _observe(
        self, dep: Deployment, state: m.State, action: m.Observe
    ) -> tuple[Deployment, m.Event, tuple[str, ...]]:
        until = parse_iso(action.until)
        start = parse_iso(state.window_start)
        interval = timedelta(seconds=self.env.canary.check_interval_seconds)
        now = self.clock.now()
        wake = min(until, now + interval) if now < until else now
        if state.errors:  # the last read failed: wait a whole interval before the next one
            wake = now + interval
        left = (until - now).total_seconds() / 60
        last = dep.verdicts[-1].reasons if dep.verdicts else None
        label = (
            f"canary {dep.environment}: {state.phase} at {state.weight}% → v{dep.version}, "
            f"{left:.1f} min left in the window" + (f" (last: {'; '.join(last)})" if last else "")
        )
        progress = BakeProgress(
            environment=dep.environment,
            version=dep.version,
            stable=dep.previous_version if state.weight < 100 else None,
            phase=state.phase,
            step=max(state.step, 0),
            steps=len(self.env.canary.steps),
            weight=state.weight,
            window_left_s=(until - now).total_seconds(),
            last=dep.verdicts[-1] if dep.verdicts else None,
        )
        self.reporter.wait(self.clock, (wake - now).total_seconds(), label, progress=progress)
        now = self.clock.now()
        # every function's look at once (independent reads); the first failure, in order, is the look's
        answers = at_once([lambda mv=mv: self._look(dep, state, *mv, start, now, now >= until)
                           for mv in self._active(dep)])  # fmt: skip
        try:
            if failed := next((a for a in answers if isinstance(a, Exception)), None):
                raise failed
            looks = answers
        except Exception as exc:
            failure = _environment_failure(exc)
            if failure is None:
                raise  # a bug, not a failed read
            why = failure.one_line()
            limit = self.env.canary.consecutive_error_limit
            self.reporter.warn(
                f"gate {dep.environment}: metric read failed ({state.errors + 1}/{limit} in a row): {why}"
            )
            return dep, m.ObservationFailed(now, why), (f"metric read failed: {why}",)
        single = self.rel.single
        for mem, verdict, _c, _s in looks:
            self._report_verdict(dep, state, verdict, start, now, "" if single else f"{mem.key}: ")
        verdict = looks[0][1] if single else combine_verdicts([(mem.key, v) for mem, v, _c, _s in looks])
        prev = dep.verdicts[-1] if dep.verdicts else None
        seen = parse_iso(prev.at) if prev and prev.window_start == iso(start) else None
        record = VerdictRecord(
            at=iso(now),
            decision=verdict.decision,
            phase=state.phase,
            step=state.step,
            weight=state.weight,
            window_start=iso(start),
            canary_start=state.canary_start,
            source=verdict.source,
            reasons=tuple(verdict.reasons),
            results=verdict_results(looks, single),
            # the per-minute numbers the judge read, new since the last check (reports chart them)
            minutes=verdict_minutes(looks, single, seen),
        )
        dep = self.history.update(dep, verdict=record)
        return dep, m.Checked(now, verdict.decision, verdict.reasons), verdict.reasons

    def _look(self, dep, state, member: Member, v: Versions, start, now, complete: bool):
        """One function's look: its traffic fed (local mode), its canary vs stable judged."""
        stable = v.from_version if state.weight < 100 else None
        canary_start = parse_iso(state.canary_start) if state.canary_start else None
        feed = self._feed(member)
        if feed is not None:
            roles = {v.to_version: "canary"}
            weights = {v.to_version: state.weight}
            if v.from_version and state.weight < 100:
                roles[v.from_version] = "stable"
                weights[v.from_version] = 100 - state.weight
            feed.run_until(now, weights, roles)
        verdict, c, s = member.gates.check(
            v.to_version,
            stable,
            start,
            now,
            window_complete=complete,
            canary_start=canary_start,
            weight=state.weight,
        )
        return member, verdict, c, s

    def _report_verdict(
        self, dep: Deployment, state: m.State, verdict: Verdict, start: datetime, now: datetime, who=""
    ):
        """One plain line per check with the key numbers; every check's detail when it decides."""
        minute = (now - start).total_seconds() / 60
        parts = []
        for r in verdict.results:
            if r.kind == "absolute" and r.observed is not None:
                value = f"{r.observed:.2%}" if r.metric == "error_rate" else f"{r.observed:.0f} ms"
                parts.append(f"{r.metric} {value} {r.outcome}")
        summary = " · ".join(parts) or "no data yet"
        self.reporter.info(
            "gate",
            dep.environment,
            f"{who}{state.phase} {state.weight}% minute {minute:g}: {verdict.decision} "
            f"({summary}; {verdict.source})",
        )
        decisive = verdict.decision != "continue" or now >= parse_iso(state.window_end or iso(now))
        if decisive:
            for r in verdict.results:
                if r.detail:
                    self.reporter.child(f"  {who}{r.detail}")

    def _roll_back(self, dep: Deployment, why: str) -> m.Event:
        """All traffic of every function back on its previous version through the rollback core
        (retried, verified); one function's restore failing does not stop the others'."""
        self._rollback_tried = []
        rel, failed = self.rel, []
        for member, v in self._active(dep):
            target = v.from_version
            if target is None:
                self._rollback_tried.append("nothing: no previous version recorded to roll back to")
                return m.Failed(self.clock.now(), "no previous version to roll back to")
            try:
                alias = restore(
                    member.traffic,
                    target,
                    retry=Retry(self.rollback_attempts, self.rollback_retry_seconds),
                    sleep=self.clock.sleep,
                    now=self.clock.now,
                    warn=lambda text: self.reporter.warn(f"rollback {dep.environment}: {text}"),
                )
            except LostRace:  # a concurrent rollback moved the alias to the same version: it records it
                self.reporter.info("rollback", dep.environment, f"another run moved all traffic to v{target}")
                continue
            except RestoreFailed as exc:
                self._rollback_tried += exc.tried
                where = "" if rel.single else f"{member.function} "
                failed.append(f"{where}rollback to v{target} failed after {len(exc.tried)} attempts")
                last = exc.last
                continue
            self.reporter.info(
                "rollback",
                dep.environment,
                f"all traffic back on {rel.label(member, target)} ({why}); alias {member.alias}: "
                f"{alias.weights}",
            )
        if failed:
            return m.Failed(
                self.clock.now(), f"{'; '.join(failed)} ({why}); last: {last}; alias now: {self._serving()}"
            )
        return m.RolledBack(self.clock.now())

    def _serving(self) -> str:
        """What the aliases serve, for a page; "unknown" when even that cannot be read."""
        rel, out = self.rel, []
        for member in rel.members:
            try:
                text = str(member.traffic.state().weights)
            except Exception as exc:  # noqa: BLE001 - best effort, for the message only
                failure = _environment_failure(exc)
                text = f"unknown ({failure.one_line() if failure else type(exc).__name__})"
            out.append(text if rel.single else f"{member.function} {text}")
        return ", ".join(out)

    def _await_approval(self, dep: Deployment, state: m.State, gate: str) -> m.Event | None:
        """The waiting process acts on the pause's deadline; a prompt answers for a person (the TTY:
        one identity of the rule) or stands in for the people (a rehearsal's prompt: ``prompt_waives``)."""
        if state.deadline and self.clock.now() >= parse_iso(state.deadline):
            return m.DeadlinePassed(self.clock.now())
        if gate == "before_canary" and self.pre_approved_by:
            return m.Approved(self.clock.now(), self.pre_approved_by, waived=True, reason="approved upstream")
        answered = any(a.get("who") == self.prompt_who for a in state.answers)
        if self.approve_prompt is not None and not answered:
            answer = self.approve_prompt(f"{dep.environment}: {state.reason}. Approve?")
            now = self.clock.now()
            if answer is not None and state.deadline and now >= parse_iso(state.deadline):
                self.reporter.warn(
                    f"canary {dep.environment}: answered after the deadline ({state.deadline})"
                )
                return m.DeadlinePassed(now)
            if answer is True:
                return m.Approved(now, self.prompt_who, waived=self.prompt_waives)
            if answer is False:
                return m.Rejected(now, self.prompt_who, "rejected at the prompt")
        self.reporter.info(
            "canary",
            dep.environment,
            f"awaiting approval ({gate}, deadline {state.deadline}): run `stageflow approve "
            f"{dep.environment}` to continue or `stageflow reject {dep.environment}` to roll back",
        )
        return None


def _answer_record(event, old: m.State, new: m.State) -> dict:
    """One answer as the deployment record keeps it: who, when, which option, why, at which pause, and
    what it did."""
    at = iso(event.at)
    where = {"pause": old.approval_for, "step": old.step, "weight": old.weight, "result": new.phase}
    if isinstance(event, m.DeadlinePassed):
        return {"who": "deadline", "at": at, "option": "deadline", "reason": new.reason, **where}
    if isinstance(event, m.Rejected):
        return {"who": event.who, "at": at, "option": "reject", "reason": event.reason, **where}
    out = {"who": event.who, "at": at, "option": event.option, "reason": event.reason, **where}
    out.update({"roles": list(event.roles)} if event.roles else {})
    out.update({"minutes": event.minutes} if event.minutes is not None else {})
    out.update({"waived": True} if event.waived else {})
    return out


def _environment_failure(exc: BaseException):
    """``exc`` as an EnvironmentFailure (AWS, the network) or ``None`` when it is something else (a bug)."""
    from stageflow.aws import aws_error
    from stageflow.errors import EnvironmentFailure

    if isinstance(exc, EnvironmentFailure):
        return exc
    mapped = aws_error(exc)
    return mapped if isinstance(mapped, EnvironmentFailure) else None
