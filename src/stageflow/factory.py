"""The composition root: the only place that chooses the target (AWS or the local emulator) and creates
AWS clients, the emulator, Terraform endpoints, metric sources, traffic feeds, clocks and the services
the commands use (the Terraform service, the outputs store, the secret store, the deploy services).

The target is chosen once (:attr:`Factory.local`); everything below it gets plain parts, never the
factory. Where the emulator cannot do what AWS does, the difference is a *named seam* chosen here and
nowhere else (docs/architecture.md lists them):

- ``metric source``: CloudWatch percentiles (AWS) vs the traffic simulator's percentiles (emulator);
- ``traffic feed``: real traffic (AWS: none to make) vs the simulator writing per-version metrics;
- ``clock``: the system clock vs a virtual clock (a 60-minute canary rehearsed in seconds);
- ``terraform endpoint``: the root's ``backend.hcl`` vs a generated backend + provider override;
- ``image registry``: ECR (or the configured one) vs the loopback registry;
- ``service endpoint`` (integration, load): the function through its alias vs the app served on loopback;
- ``function check`` (pre-traffic, smoke): the emulator's local runtime runs the deployed zip, so the
  check is one path, except where this machine cannot run the function (an ``arm64`` function on an
  x86_64 machine): then it is "not run here" (:meth:`Factory.function_check`).

CLI commands and nox sessions get a :class:`Factory` and pass what it builds on; tests build one
pointed at a temporary state directory, or build the parts from the fakes in ``tests/fakes.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from stageflow.clock import Clock, SystemClock
from stageflow.config import Config, EnvironmentConfig, find_config, load
from stageflow.errors import UsageError
from stageflow.report import Reporter

if TYPE_CHECKING:
    from stageflow.deploy.canary import Context
    from stageflow.outputs import DeployOutputs
    from stageflow.outputs_store import OutputsStore
    from stageflow.services import DeployServices, SecretStore, ServiceEndpoint
    from stageflow.terraform.api import TerraformEndpoint, TerraformService

IMPLICIT_LOCAL = "no AWS credentials found"
# Never run against the emulator just because no credentials were found: an on-call engineer with
# expired credentials must not get a rollback of nothing.
ON_CALL = ("rollback", "approve", "reject", "unlock", "resume", "freeze", "unfreeze", "tick")
ON_CALL_COMMANDS = frozenset(ON_CALL)
# Commands that read or act on what is deployed: they never start the emulator or build anything.
NEVER_START = frozenset({*ON_CALL, "status", "history", "report", "dora", "incidents"})


class Factory:
    def __init__(
        self,
        *,
        config_path: str | Path | None = None,
        local: bool | None = None,
        reporter: Reporter | None = None,
        state_dir: str | Path | None = None,
        clock: Clock | None = None,
        command: str | None = None,
    ):
        self._config_path = Path(config_path) if config_path else None
        self._local_flag = local
        self.reporter = reporter or Reporter()
        self._state_dir = Path(state_dir) if state_dir else None
        self._clock = clock
        self.command = command  # the CLI command being run (on-call safety decisions)
        self._envs: dict[str, Context] = {}

    # -- configuration ---------------------------------------------------------------------------
    @cached_property
    def config(self) -> Config:
        return load(self._config_path or find_config())

    @property
    def root(self) -> Path:
        if self._config_path is not None or "config" in self.__dict__:
            return self.config.root
        return find_config().parent

    @cached_property
    def state_dir(self) -> Path:
        if self._state_dir is not None:
            return self._state_dir
        env = os.environ.get("STAGEFLOW_STATE_DIR")
        return Path(env) if env else self.root / ".stageflow"

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = SystemClock()
        return self._clock

    @property
    def region(self) -> str:
        return self.config.service.region if self._has_config() else "us-east-1"

    def _has_config(self) -> bool:
        try:
            self.config  # noqa: B018
        except Exception:  # noqa: BLE001
            return False
        return True

    # -- the target, chosen once -------------------------------------------------------------------
    @cached_property
    def _mode(self) -> tuple[bool, str]:
        from stageflow.aws import detect_local_mode

        return detect_local_mode(self._local_flag)

    def require_local(self, why: str) -> None:
        """Commands that only make sense on the emulator (rehearse): local unless --no-local was given."""
        if self._local_flag is False:
            raise UsageError(f"{why} runs only against the local emulator", "drop --no-local")
        if "_mode" not in self.__dict__:
            self._local_flag = True

    @property
    def implicit_local(self) -> bool:
        local, reason = self._mode
        return local and reason == IMPLICIT_LOCAL

    @cached_property
    def local(self) -> bool:
        local, _ = self._mode
        if self.implicit_local:
            if self.command in ON_CALL_COMMANDS:
                raise UsageError(
                    f"no AWS credentials found, and `stageflow {self.command}` never falls back to the "
                    "local emulator",
                    "configure AWS credentials for the real environment, or pass --local to act on the "
                    "emulator",
                )
            self.reporter.info(
                "local",
                "",
                "no AWS credentials found: using the local AWS emulator "
                "(pass --no-local or set STAGEFLOW_LOCAL=0 to refuse)",
            )
        return local

    def env(self, env_name: str) -> EnvironmentConfig:
        """The environment's settings; refuses a protected environment on an implicitly chosen
        emulator (exit 2, nothing started)."""
        env = self.config.env(env_name)
        if env.protected and self.implicit_local and self.local:
            raise UsageError(
                f"{env_name} is protected and no AWS credentials were found: local mode is never chosen "
                f"implicitly for it",
                "configure AWS credentials, or pass --local to use the emulator",
            )
        return env

    @cached_property
    def emulator(self):
        from stageflow.local.emulator import Emulator

        return Emulator(self.state_dir)

    @property
    def may_start(self) -> bool:
        """Whether this command may start the emulator (read-only and on-call commands never do)."""
        return self.command not in NEVER_START

    def ensure_local(self):
        """Start the emulator on demand; a fresh one gets the Terraform state bucket and lock table."""
        if not self.may_start:
            status = self.emulator.status()
            if not status.running:
                raise UsageError(
                    "the local AWS emulator is not running, so nothing is deployed there",
                    "deploy first: make demo (or stageflow --local deploy ENV)",
                )
            return status
        status, started = self.emulator.up()
        if started:
            from stageflow.aws import AwsClients, AwsTarget
            from stageflow.local.bootstrap import bootstrap

            self.reporter.info("local", "emulator", f"started on {status.endpoint} (pid {status.pid})")
            bootstrap(AwsClients(AwsTarget(self.region, True, status.endpoint)), self.region)
        return status

    @cached_property
    def local_endpoint_override(self) -> str | None:
        """``STAGEFLOW_LOCAL_ENDPOINT``: in local mode, talk to this loopback endpoint instead of the
        emulator's own (a fault-injecting proxy in front of the same emulator, in the reliability tests).
        Loopback-guarded like the emulator; ignored on AWS. The emulator is then neither started nor
        inspected: whatever answers there is the target, and nothing answering is exit 3 at the first call."""
        raw = (os.environ.get("STAGEFLOW_LOCAL_ENDPOINT") or "").strip()
        if not raw or not self.local:
            return None
        from stageflow.aws import check_local_endpoint

        return check_local_endpoint(raw.rstrip("/"))

    @cached_property
    def aws_target(self):
        from stageflow.aws import AwsTarget

        if self.local:
            override = self.local_endpoint_override
            if override is not None:
                return AwsTarget(self.region, True, override)
            status = self.ensure_local()
            return AwsTarget(self.region, True, status.endpoint)
        return AwsTarget(self.region, False, os.environ.get("STAGEFLOW_AWS_ENDPOINT") or None)

    @cached_property
    def aws(self):
        from stageflow.aws import AwsClients

        return AwsClients(self.aws_target)

    def child_env(self) -> dict[str, str]:
        """Extra environment for child processes (terraform, docker) for the current target."""
        from stageflow.aws import local_env

        if self.local:
            return local_env(self.aws_target.endpoint, self.region)
        return {}

    def describe_target(self, env_name: str) -> tuple[str, list[str]]:
        """For people: where a command ran (" on the local AWS emulator") and what to try next."""
        if not self.local:
            return "", []
        st = self.emulator.status()
        return " on the local AWS emulator", [
            f"  emulator: {st.endpoint} (stageflow local status | stageflow local down)",
            f"  see it: stageflow --local status {env_name}   "
            f"roll back: make rollback ENV={env_name} LOCAL=1",
        ]

    # -- seam: terraform endpoint ----------------------------------------------------------------------
    def terraform_endpoint(self) -> TerraformEndpoint:
        return self._terraform_endpoint

    @cached_property
    def _terraform_endpoint(self) -> TerraformEndpoint:
        from stageflow.terraform.api import TerraformEndpoint

        if not self.local:
            return TerraformEndpoint("aws")
        from stageflow.local.bootstrap import LOCK_TABLE, STATE_BUCKET, bootstrap
        from stageflow.terraform.local_provider import EMULATOR_VARIABLES, override_hcl

        endpoint = self.aws_target.endpoint
        return TerraformEndpoint(
            "local",
            backend={
                "endpoint": endpoint,
                "bucket": STATE_BUCKET,
                "table": LOCK_TABLE,
                "region": self.region,
            },
            provider_override=override_hcl(endpoint, self.region),
            env=self.child_env(),
            variables=dict(EMULATOR_VARIABLES),
            # the state bucket and lock table (cheap when present), only once Terraform is about to run
            prepare=lambda: bootstrap(self.aws, self.region),
        )

    # -- seam: front door URL (integration, load, status) ------------------------------------------------
    def service_endpoint(self, env_name: str) -> AbstractContextManager[ServiceEndpoint]:
        """Where the integration suite and load tests reach the service (:func:`wiring.service_endpoint`)."""
        from stageflow.wiring import service_endpoint

        return contextlib.nullcontext(service_endpoint(self, env_name))

    # -- seam: function check (pre-traffic, smoke) ----------------------------------------------------
    def function_check(self, function: str):
        """The check that invokes ``function`` with the smoke event (see :func:`wiring.function_check`)."""
        from stageflow.wiring import function_check

        return function_check(self, function)

    # -- seam: image registry --------------------------------------------------------------------------
    def registry(self, env_name: str, engine):
        from stageflow.packaging.docker_engine import resolve_registry

        return resolve_registry(
            self.env(env_name).registry,
            local=self.local,
            engine=engine,
            ecr_client=lambda: self.aws.client("ecr"),
        )

    def build_image(self, env_name: str, engine):
        """The image builder: the environment's Docker build, tagged and pushed to its registry."""
        from stageflow.packaging.docker_build import build_for_env

        return build_for_env(
            self.config,
            env_name,
            state_dir=self.state_dir,
            reporter=self.reporter,
            registry_for=lambda eng: self.registry(env_name, eng),
            engine=engine,
        )

    # -- seams: metric source, traffic feed, clock -------------------------------------------------------
    def metric_source(self):
        if self.local:
            from stageflow.metrics.cloudwatch import LocalSimulatorSource

            return LocalSimulatorSource(self.aws.client("cloudwatch"))
        from stageflow.metrics.cloudwatch import CloudWatchSource

        return CloudWatchSource(self.aws.client("cloudwatch"))

    def traffic_feed(self, outputs: DeployOutputs, scenario: Path | None, start):
        """The simulator in local mode (it makes the traffic production gets for free); None on AWS."""
        if not self.local:
            if scenario is not None:
                raise UsageError("--scenario drives the local traffic simulator", "use it with --local")
            return None
        from stageflow.deploy.canary import DEFAULT_SCENARIO
        from stageflow.local.simulator import SimulatorFeed, load_scenario

        return SimulatorFeed(  # each function plays its own part of the scenario (``functions.KEY``)
            load_scenario(scenario or DEFAULT_SCENARIO, function=outputs.functions[0].key),
            self.aws.client("cloudwatch"),
            outputs.function_name,
            outputs.alias_name,
            start=start,
        )

    def run_clock(self, history) -> Clock:
        """AWS: the system clock. Emulator: a virtual clock that starts at the next whole minute after
        the environment's latest recorded time, so simulated minutes never overlap earlier runs."""
        from stageflow.clock import VirtualClock

        if not self.local or isinstance(self._clock, VirtualClock):
            return self.clock
        from datetime import UTC, datetime, timedelta

        from stageflow.history import parse_iso

        start = datetime.now(UTC)
        for dep in history.list(limit=1):
            times = (
                [dep.started_at, dep.ended_at]
                + [t.get("at") for t in dep.transitions]
                + [v.get("at") for v in dep.verdicts]
            )
            start = max([start] + [parse_iso(t) for t in times if t])
        for ev in history.events(limit=1):
            start = max(start, parse_iso(ev["at"]))
        start = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        self._clock = VirtualClock(start)
        return self._clock

    # -- the services, built once --------------------------------------------------------------------
    @cached_property
    def terraform(self) -> TerraformService:
        """Terraform for this configuration; the endpoint (AWS or the emulator) is chosen on first use."""
        from stageflow.terraform.api import TerraformService

        cfg, state, endpoint = self.config, self.state_dir, self.terraform_endpoint
        return TerraformService(config=cfg, state_dir=state, endpoint=endpoint, reporter=self.reporter)

    @cached_property
    def _state_endpoint(self) -> str | None:
        """The endpoint that names where the resources live, for the outputs cache: the emulator's own
        endpoint even when ``STAGEFLOW_LOCAL_ENDPOINT`` puts a proxy in front of it (same state, so the
        cache stays valid through the proxy); the override itself when no emulator of this state
        directory runs; the AWS endpoint (or None) on AWS."""
        if self.local_endpoint_override is None:
            return self.aws_target.endpoint
        own = self.emulator.status()
        return own.endpoint if own.running else self.local_endpoint_override

    @cached_property
    def outputs_store(self) -> OutputsStore:
        """What Terraform built, remembered on this machine (see :mod:`stageflow.outputs_store`)."""
        from stageflow.outputs_store import OutputsStore

        return OutputsStore(
            state_dir=self.state_dir,
            target=lambda: "local" if self.local else "aws",
            state_endpoint=lambda: self._state_endpoint,
            client=lambda name: self.aws.client(name),
            terraform_outputs=lambda env_name: self.terraform.outputs(env_name),
        )

    def outputs(self, env_name: str, *, cached_only: bool = False) -> DeployOutputs | None:
        return self._front_door(self.outputs_store.get(env_name, cached_only=cached_only))  # OutputsStore.get

    def _front_door(self, out: DeployOutputs | None) -> DeployOutputs | None:
        from stageflow.wiring import front_door_url  # the seam "front door URL"

        url = None if out is None else front_door_url(self, out.url)
        return out if out is None or url == out.url else dataclasses.replace(out, url=url)

    @cached_property
    def secret_store(self) -> SecretStore:
        from stageflow.services import SecretStore

        return SecretStore(self.config, lambda: self.aws)

    def deploy_services(self) -> DeployServices:
        """What the deploy chain uses (:func:`stageflow.pipeline.deploy`): see :mod:`stageflow.wiring`."""
        from stageflow.wiring import deploy_services

        return deploy_services(self)

    def package(self):
        """The Lambda packages the environment roots deploy (the service zip and the rollback zip)."""
        from stageflow.packaging.lambda_zip import build_packages

        return build_packages(self.config)

    def security_gate(self, artifact):
        """The security gate over the repository and ``artifact`` (unchanged inputs: cached results)."""
        from stageflow.security.gate import run_gate

        cache = self.state_dir / "cache" / "security"
        data = artifact.data if artifact is not None else None
        return run_gate(self.config.root, self.reporter, cache_dir=cache, artifact=data)

    # -- one environment, wired -------------------------------------------------------------------------
    def environment(self, env_name: str, outputs: DeployOutputs | None = None) -> Context:
        """The core's ports for one environment: history, alias router, publisher, notifier, gates."""
        if env_name in self._envs and outputs is None:
            return self._envs[env_name]
        from stageflow import notify
        from stageflow.aws import check_local_endpoint
        from stageflow.deploy.canary import Context
        from stageflow.deploy.gates import GateReader, default_judge
        from stageflow.deploy.publish import LambdaPublisher
        from stageflow.deploy.traffic import AliasTraffic
        from stageflow.dora.publish import publish_delivery_metrics
        from stageflow.history import DynamoHistory
        from stageflow.metrics.cloudwatch import CloudWatchAlarms
        from stageflow.wiring import decision_links, release

        env = self.env(env_name)
        out = self._front_door(outputs) or self.outputs(env_name)
        lam = self.aws.client("lambda")
        service = self.config.service.name
        history = DynamoHistory(self.aws.client("dynamodb"), out.history_table, service, env.name)
        gates = GateReader(
            source=self.metric_source(),
            alarms=CloudWatchAlarms(self.aws.client("cloudwatch")),
            alarm_names=tuple(out.alarm_names) + tuple(env.gates.alarms),
            gates=env.gates,
            function=out.function_name,
            alias=out.alias_name,
            judge=default_judge(),
        )
        ctx = Context(
            env=env,
            service=service,
            outputs=out,
            history=history,
            traffic=AliasTraffic(lam, out.function_name, out.alias_name),
            publisher=LambdaPublisher(lam, out.function_name, out.alias_name),
            function_check=self.function_check(out.function_name),
            notifier=notify.for_environment(
                env.notifications,
                terraform_topic=out.topic_arn,
                sns_client=lambda: self.aws.client("sns"),
                reporter=self.reporter,
                environ=os.environ,
                local_guard=check_local_endpoint if self.local else None,
            ),
            gates=gates,
            reporter=self.reporter,
            clock_for=lambda: self.run_clock(history),
            feed_for=lambda scenario, start: self.traffic_feed(out, scenario, start),
            delivery=lambda dep: publish_delivery_metrics(self.aws.client("cloudwatch"), dep),
            functions=release(self, out, gates),
        )
        ctx.decision_links = decision_links(self, env.name, ctx)
        self._envs[env_name] = ctx
        return ctx
