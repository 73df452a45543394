"""A canary deploy, start to finish: resources → publish → lock → record → drive → release.

``start`` begins a new deployment; ``resume``, ``approve`` and ``reject`` continue the one in flight.
The CLI commands and nox sessions are thin callers of these functions.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stageflow.build.lambda_zip import LambdaZip, package
from stageflow.clock import Clock, VirtualClock
from stageflow.config import EnvironmentConfig
from stageflow.deploy import machine as m
from stageflow.deploy.driver import Driver, RunOutcome
from stageflow.deploy.gates import GateReader, default_judge
from stageflow.deploy.publish import Published, publish
from stageflow.deploy.traffic import AliasTraffic
from stageflow.dora import commit_facts, publish_delivery_metrics
from stageflow.errors import ReleaseRejected, RollbackFailed, UsageError
from stageflow.history import Deployment, DynamoHistory, default_who, iso, new_deployment_id, parse_iso
from stageflow.notify import Notifiers, SlackNotifier, SnsNotifier
from stageflow.outputs import DeployOutputs

DEFAULT_SCENARIO = Path(__file__).resolve().parents[1] / "data" / "healthy.json"


@dataclass
class Context:
    """Everything a run needs for one environment, resolved once."""

    env: EnvironmentConfig
    outputs: DeployOutputs
    history: DynamoHistory
    traffic: AliasTraffic
    cloudwatch: object | None = None  # delivery metrics (Stageflow/Delivery) at the end of a run


def resolve_outputs(factory, env: EnvironmentConfig, *, ensure: bool = False) -> DeployOutputs:
    """Local mode: the provisioner's resources (``ensure``: create what is missing, as a deploy
    does; otherwise found by name when they exist); AWS: Terraform's outputs. Once per process."""
    cache = factory.__dict__.setdefault("_outputs_cache", {})
    key = (env.name, ensure and factory.local)
    if key not in cache and factory.local:
        remembered = _remembered_local_outputs(factory, env)
        if remembered is not None:
            cache[key] = remembered
    if key not in cache:
        if factory.local and not ensure:
            from stageflow.deploy.provision import existing_outputs

            found = existing_outputs(factory.aws, factory.config, env)
            cache[key] = found if found is not None else resolve_outputs(factory, env, ensure=True)
        elif factory.local:
            from stageflow.deploy.provision import provision

            cache[key] = provision(factory.aws, factory.config, env, datetime.now(UTC), factory.reporter)
        else:
            from stageflow.terraform.api import outputs as tf_outputs

            cache[key] = tf_outputs(factory, env.name)
    return cache[key]


def _outputs_file(factory, env: EnvironmentConfig) -> Path:
    return factory.state_dir / "local" / f"outputs-{env.name}.json"


def remember_local_outputs(factory, env: EnvironmentConfig, out: DeployOutputs) -> None:
    """Local mode built by Terraform: later commands read these outputs (valid for this emulator run)."""
    import json

    status = factory.emulator.status()
    path = _outputs_file(factory, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"emulator_pid": status.pid, "emulator_started_at": status.started_at, "outputs": out.to_json()}
        )
    )


def _remembered_local_outputs(factory, env: EnvironmentConfig) -> DeployOutputs | None:
    import json

    from stageflow.outputs import parse_outputs

    path = _outputs_file(factory, env)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    status = factory.emulator.status()
    if (data.get("emulator_pid"), data.get("emulator_started_at")) != (status.pid, status.started_at):
        path.unlink(missing_ok=True)  # a different emulator run: those resources are gone
        return None
    raw = dict(data["outputs"])
    source = raw.pop("source", "terraform")
    out = parse_outputs(raw, source=source, where=str(path))
    from botocore.exceptions import ClientError

    try:  # the emulator may have been reset since: only trust outputs whose function still exists
        factory.aws.client("lambda").get_alias(FunctionName=out.function_name, Name=out.alias_name)
        factory.aws.client("sns").get_topic_attributes(TopicArn=out.topic_arn)
    except ClientError:
        path.unlink(missing_ok=True)
        return None
    return out


def context(factory, env_name: str, *, ensure: bool = False) -> Context:
    env = factory.config.env(env_name)
    out = resolve_outputs(factory, env, ensure=ensure)
    history = DynamoHistory(
        factory.aws.client("dynamodb"), out.history_table, factory.config.service.name, env.name
    )
    traffic = AliasTraffic(factory.aws.client("lambda"), out.function_name, out.alias_name)
    return Context(env, out, history, traffic, factory.aws.client("cloudwatch"))


def run_clock(factory, ctx: Context) -> Clock:
    """Local mode runs on a virtual clock that never goes back behind the environment's history."""
    if not factory.local:
        return factory.clock
    if isinstance(factory.clock, VirtualClock):
        return factory.clock
    start = datetime.now(UTC)
    for dep in ctx.history.list(limit=1):
        times = (
            [dep.started_at, dep.ended_at]
            + [t.get("at") for t in dep.transitions]
            + [v.get("at") for v in dep.verdicts]
        )
        start = max([start] + [parse_iso(t) for t in times if t])
    for ev in ctx.history.events(limit=1):
        start = max(start, parse_iso(ev["at"]))
    # the next whole minute: metrics land on minute boundaries, and time never goes back
    start = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    clock = VirtualClock(start)
    factory._clock = clock
    return clock


def make_notifier(factory, ctx: Context) -> Notifiers:
    env = ctx.env
    channels = []
    topic = env.notifications.sns_topic_arn
    if topic:
        arn = ctx.outputs.topic_arn if topic == "from-terraform" else topic
        channels.append(SnsNotifier(factory.aws.client("sns"), arn))
    hook_var = env.notifications.slack_webhook_env
    url = os.environ.get(hook_var) if hook_var else None
    if url:
        if factory.local:
            from urllib.parse import urlsplit

            from stageflow.aws import check_local_endpoint

            parts = urlsplit(url)
            check_local_endpoint(f"{parts.scheme}://{parts.netloc}")
        channels.append(SlackNotifier(url))
    return Notifiers(channels, factory.reporter)


def make_driver(
    factory,
    ctx: Context,
    clock: Clock,
    *,
    scenario: Path | None = None,
    interactive: bool = False,
    approve_prompt=None,
    pre_approved_by: str | None = None,
) -> Driver:
    env = ctx.env
    notifier = make_notifier(factory, ctx)

    if factory.local:
        from stageflow.local.simulator import SimulatorFeed, load_scenario
        from stageflow.metrics.cloudwatch import CloudWatchAlarms, LocalSimulatorSource

        sc = load_scenario(scenario or DEFAULT_SCENARIO)
        feed = SimulatorFeed(
            sc,
            factory.aws.client("cloudwatch"),
            ctx.outputs.function_name,
            ctx.outputs.alias_name,
            start=clock.now(),
        )
        source = LocalSimulatorSource(factory.aws.client("cloudwatch"))
    else:
        from stageflow.metrics.cloudwatch import CloudWatchAlarms, CloudWatchSource

        feed = None
        source = CloudWatchSource(factory.aws.client("cloudwatch"))
    alarms = CloudWatchAlarms(factory.aws.client("cloudwatch"))
    reader = GateReader(
        source=source,
        alarms=alarms,
        alarm_names=tuple(ctx.outputs.alarm_names) + tuple(env.gates.alarms),
        gates=env.gates,
        function=ctx.outputs.function_name,
        alias=ctx.outputs.alias_name,
        judge=default_judge(),
    )
    prompt = approve_prompt or (_tty_prompt if interactive else None)
    return Driver(
        env=env,
        history=ctx.history,
        traffic=ctx.traffic,
        gates=reader,
        notifier=notifier,
        clock=clock,
        reporter=factory.reporter,
        feed=feed,
        approve_prompt=prompt,
        stop_after=_failpoint(),
        pre_approved_by=pre_approved_by,
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


def start(
    factory,
    env_name: str,
    *,
    artifact: LambdaZip | None = None,
    scenario: Path | None = None,
    commit: str | None = None,
    extra: dict | None = None,
    interactive: bool = False,
    who: str | None = None,
    approve_prompt=None,  # (question) -> True/False/None; rehearsals auto-approve with it
    ctx: Context | None = None,  # already resolved (rehearsals read the history afterwards)
    plan_hash: str | None = None,  # sha256 of the Terraform plan applied before this deploy
    pre_approved_by: str | None = None,  # who approved upstream (CodePipeline's approval before prod)
) -> StartResult:
    cfg = factory.config
    env = cfg.env(env_name)
    artifact = artifact or package(cfg.root / cfg.service.source)
    ctx = ctx or context(factory, env_name, ensure=True)
    clock = run_clock(factory, ctx)
    now = clock.now()
    dep_id = new_deployment_id(now)
    who = who or default_who()
    ctx.history.acquire_lock(dep_id, who, now)
    try:
        dep = Deployment(
            deployment_id=dep_id,
            environment=env.name,
            service=cfg.service.name,
            version="",
            previous_version=None,
            status="in_progress",
            phase="publishing",
            started_at=iso(now),
            who=who,
            commit=commit,
            artifact_digest=artifact.digest,
            plan_hash=plan_hash,
            extra=dict(extra or {}),
            state=m.State().to_json(),
        )
        dep.extra["resources"] = ctx.outputs.source
        dep.extra["clock"] = "virtual" if factory.local else "system"
        dep.extra.update({k: v for k, v in commit_facts(cfg.root, commit).items() if k not in dep.extra})
        ctx.history.create(dep)
        pub = publish(
            factory.aws.client("lambda"),
            ctx.outputs.function_name,
            ctx.outputs.alias_name,
            artifact,
            description=f"stageflow {dep_id} {commit or ''}".strip(),
        )
        if pub.version is None:
            ctx.history.update(
                dep,
                status="succeeded",
                phase="no_change",
                ended_at=iso(clock.now()),
                version=pub.previous_version,
                previous_version=pub.previous_version,
                transition={
                    "at": iso(clock.now()),
                    "from": "publishing",
                    "to": "no_change",
                    "reason": pub.reason,
                },
            )
            ctx.history.release_lock(dep_id)
            factory.reporter.info("publish", env.name, f"nothing to deploy: {pub.reason}")
            return StartResult(pub, None)
        if os.environ.get("STAGEFLOW_FAILPOINT") == "kill-after-publish":
            os.kill(os.getpid(), signal.SIGKILL)
        factory.reporter.info(
            "publish",
            env.name,
            f"{pub.reason} (was v{pub.previous_version}, code {artifact.code_sha256[:12]}…)",
        )
        ctx.history.update(
            dep,
            version=pub.version,
            previous_version=pub.previous_version,
            phase="pending",
            transition={"at": iso(clock.now()), "from": "publishing", "to": "pending", "reason": pub.reason},
        )
    except BaseException:
        # Nothing moved yet: leave no lock behind for a failure before the canary began.
        current = ctx.history.get(dep_id)
        if current is not None and current.phase in ("publishing",):
            ctx.history.update(
                current,
                status="failed",
                phase="failed",
                ended_at=iso(clock.now()),
                transition={
                    "at": iso(clock.now()),
                    "from": "publishing",
                    "to": "failed",
                    "reason": "failed before any traffic moved",
                },
            )
        ctx.history.release_lock(dep_id)
        raise
    driver = make_driver(
        factory,
        ctx,
        clock,
        scenario=scenario,
        interactive=interactive,
        approve_prompt=approve_prompt,
        pre_approved_by=pre_approved_by,
    )
    outcome = driver.run(dep)
    return StartResult(pub, _finish(ctx, outcome))


def _in_flight(ctx: Context, env_name: str) -> Deployment:
    dep = ctx.history.in_flight()
    if dep is None:
        raise UsageError(f"no deployment in flight in {env_name}", f"see: stageflow status {env_name}")
    return dep


def cont(
    factory,
    env_name: str,
    event_kind: str | None = None,
    *,
    scenario: Path | None = None,
    who: str | None = None,
    reason: str = "",
    interactive: bool = False,
) -> RunOutcome:
    """Continue the deployment in flight: resume (event_kind None), approve or reject."""
    ctx = context(factory, env_name)
    dep = _in_flight(ctx, env_name)
    clock = run_clock(factory, ctx)
    state = m.State.from_json(dep.state) if dep.state else m.State()
    who = who or default_who()
    if dep.phase == "publishing" or not dep.version:
        # Killed before the canary began: no traffic moved. Close it and free the lock.
        ctx.history.update(
            dep,
            status="failed",
            phase="failed",
            ended_at=iso(clock.now()),
            transition={
                "at": iso(clock.now()),
                "from": dep.phase,
                "to": "failed",
                "reason": "run stopped before publishing finished; no traffic moved",
            },
        )
        ctx.history.release_lock(dep.deployment_id)
        raise UsageError(
            f"deployment {dep.deployment_id} stopped before publishing finished; no traffic moved",
            f"start again: stageflow canary {env_name}",
        )
    event: m.Event | None = None
    if event_kind in ("approve", "reject"):
        if state.phase != "awaiting_approval":
            raise UsageError(
                f"deployment {dep.deployment_id} is {state.phase}, not awaiting approval",
                f"see: stageflow status {env_name}",
            )
        event = (
            m.Approved(clock.now(), who)
            if event_kind == "approve"
            else m.Rejected(clock.now(), who, reason or "rejected")
        )
    if state.phase == "awaiting_approval" and dep.transitions:
        paused_at = parse_iso(dep.transitions[-1]["at"])
        limit = ctx.env.approvals.timeout_minutes
        if clock.now() - paused_at > timedelta(minutes=limit):
            factory.reporter.info(
                "canary", env_name, f"the approval pause passed its {limit:g} min timeout: rolling back"
            )
            event = m.Rejected(clock.now(), "timeout", f"no approval within {limit:g} min")
    lock = ctx.history.lock()
    if lock is None:
        ctx.history.acquire_lock(dep.deployment_id, who, clock.now())
    driver = make_driver(factory, ctx, clock, scenario=scenario, interactive=interactive)
    return _finish(ctx, driver.run(dep, event))


def _finish(ctx: Context, outcome: RunOutcome) -> RunOutcome:
    state, dep = outcome.state, outcome.deployment
    if state.terminal:
        ctx.history.release_lock(dep.deployment_id)
        if ctx.cloudwatch is not None:
            publish_delivery_metrics(ctx.cloudwatch, dep)
    if state.phase == "rolled_back":
        reasons = state.reason
        raise ReleaseRejected(
            f"v{dep.version} rolled back in {dep.environment}: {reasons}",
            f"all traffic is on v{dep.previous_version}",
        )
    if state.phase == "failed":
        raise RollbackFailed(
            f"deployment {dep.deployment_id} failed: {state.reason}",
            f"page a person; inspect: stageflow status {dep.environment}",
        )
    return outcome
