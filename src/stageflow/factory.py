"""The composition root: the only place that chooses the target (AWS or the local emulator) and creates
AWS clients, the emulator, Terraform endpoints, metric sources, traffic feeds and clocks.

The target is chosen once (:attr:`Factory.target`); everything below it gets plain parts. Where the
emulator cannot do what AWS does, the difference is a *named seam* chosen here and nowhere else
(docs/architecture.md lists them):

- ``metric source``: CloudWatch percentiles (AWS) vs the traffic simulator's percentiles (emulator);
- ``traffic feed``: real traffic (AWS: none to make) vs the simulator writing per-version metrics;
- ``clock``: the system clock vs a virtual clock (a 60-minute canary rehearsed in seconds);
- ``terraform endpoint``: the root's ``backend.hcl`` vs a generated backend + provider override that
  point every endpoint at the emulator;
- ``image registry``: ECR (or the configured one) vs the loopback registry;
- ``service endpoint`` (smoke, load): the function through its alias vs the app served on loopback.

CLI commands and nox sessions get a :class:`Factory` and ask it for what they need; tests build one
pointed at a temporary state directory and the emulator they started, or build the core's parts from
the in-memory fakes in ``tests/fakes.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

IMPLICIT_LOCAL = "no AWS credentials found"
# Never run against the emulator just because no credentials were found: an on-call engineer with
# expired credentials must not get a rollback of nothing.
ON_CALL_COMMANDS = frozenset({"rollback", "approve", "reject", "unlock", "resume"})
# Commands that read or act on what is deployed: they never start the emulator or build anything.
NEVER_START = frozenset(
    {"rollback", "approve", "reject", "unlock", "resume", "status", "history", "report", "dora"}
)


@dataclass(frozen=True)
class TerraformEndpoint:
    """Where Terraform's backend and provider talk to (the ``terraform endpoint`` seam)."""

    name: str  # "aws" or "local": also names Terraform's working directory
    backend: dict | None = None  # None: the root's backend.hcl; else the generated S3 backend's settings
    provider_override: str | None = None  # HCL merged into roots that use the AWS provider
    env: dict | None = None  # extra child environment (dummy credentials, endpoint) or None
    prepare: Callable[[], object] | None = None  # before `init`: create what the backend needs


@dataclass(frozen=True)
class ServiceEndpoint:
    """The deployed service, for smoke and load tests: an HTTP base URL, or a function alias to invoke."""

    url: str | None
    lambda_client: object | None = None
    function: str | None = None
    alias: str | None = None


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
        self._outputs: dict[str, DeployOutputs] = {}
        self._stale_outputs: set[str] = set()  # remembered outputs found no longer valid

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
        if "_tf_endpoint" not in self.__dict__:
            self.__dict__["_tf_endpoint"] = self._terraform_endpoint()
        return self.__dict__["_tf_endpoint"]

    def _terraform_endpoint(self) -> TerraformEndpoint:
        if not self.local:
            return TerraformEndpoint("aws")
        from stageflow.local.bootstrap import LOCK_TABLE, STATE_BUCKET, bootstrap
        from stageflow.terraform.local_provider import override_hcl

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
            # the state bucket and lock table (cheap when present), only once Terraform is about to run
            prepare=lambda: bootstrap(self.aws, self.region),
        )

    # -- seam: service endpoint ------------------------------------------------------------------------
    @contextlib.contextmanager
    def service_endpoint(self, env_name: str) -> Iterator[ServiceEndpoint]:
        """Where smoke and load tests reach the service. AWS: the function through its alias (the
        emulator cannot run Lambda code without images from the internet). Emulator: the app served on
        127.0.0.1 for the block's duration."""
        cfg = self.config
        self.env(env_name)
        if self.local:
            from stageflow import smoke

            with smoke.local_service(cfg.root / cfg.service.source, self.reporter) as url:
                yield ServiceEndpoint(url=url)
            return
        out = self.outputs(env_name)
        yield ServiceEndpoint(
            url=None,
            lambda_client=self.aws.client("lambda"),
            function=out.function_name,
            alias=out.alias_name,
        )

    # -- seam: image registry --------------------------------------------------------------------------
    def registry(self, env_name: str, engine):
        from stageflow.build.docker_build import resolve_registry

        return resolve_registry(
            self.env(env_name).registry,
            local=self.local,
            engine=engine,
            ecr_client=lambda: self.aws.client("ecr"),
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

        return SimulatorFeed(
            load_scenario(scenario or DEFAULT_SCENARIO),
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

    # -- outputs: what Terraform built ---------------------------------------------------------------
    def _outputs_file(self, env_name: str) -> Path:
        return self.state_dir / "outputs" / f"{self.terraform_endpoint_name}-{env_name}.json"

    @property
    def terraform_endpoint_name(self) -> str:
        return "local" if self.local else "aws"

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

    def remember_outputs(self, env_name: str, out: DeployOutputs) -> None:
        """After an apply: later commands read these instead of running ``terraform output``."""
        import json

        path = self._outputs_file(env_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"endpoint": self._state_endpoint, "outputs": out.to_json()}))
        tmp.replace(path)
        self._outputs[env_name] = out

    def _remembered(self, env_name: str) -> DeployOutputs | None:
        import json

        from botocore.exceptions import ClientError

        from stageflow.outputs import parse_outputs

        path = self._outputs_file(env_name)
        try:
            data = json.loads(path.read_text())
            out = parse_outputs(data["outputs"], where=str(path))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        except Exception:  # noqa: BLE001 - a malformed file is no cache
            return None
        if data.get("endpoint") != self._state_endpoint:
            self._stale_outputs.add(env_name)
            return None
        try:  # trust them only while what they name exists (an emulator reset removes it all)
            self.aws.client("lambda").get_alias(FunctionName=out.function_name, Name=out.alias_name)
        except ClientError as exc:
            from stageflow.aws import THROTTLING_CODES

            code = (exc.response.get("Error") or {}).get("Code") or ""
            status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            if code in THROTTLING_CODES or status >= 500:  # AWS failing is not "gone": exit 3
                from stageflow.aws import aws_error

                raise aws_error(exc, "checking the remembered outputs") from None
            path.unlink(missing_ok=True)
            self._stale_outputs.add(env_name)
            return None
        return out

    def _state_lost(self, env_name: str) -> bool:
        """Local mode: outputs were remembered for this environment, they no longer hold, and the
        emulator has no Terraform state bucket either. The emulator keeps everything in memory, so it was
        restarted (or reset) and what Terraform built is gone; asking Terraform would only say so slowly."""
        if not self.local or env_name not in self._stale_outputs:
            return False
        from botocore.exceptions import ClientError

        from stageflow.local.bootstrap import STATE_BUCKET

        try:
            self.aws.client("s3").head_bucket(Bucket=STATE_BUCKET)
        except ClientError as exc:
            status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            if status in (403, 404) or (exc.response.get("Error") or {}).get("Code") in (
                "404",
                "NoSuchBucket",
            ):
                return True
            from stageflow.aws import aws_error

            raise aws_error(exc, "checking the emulator's Terraform state") from None
        return False

    def outputs(self, env_name: str, *, cached_only: bool = False) -> DeployOutputs | None:
        """The environment's outputs contract: remembered from this machine's last apply while still
        valid, else ``terraform output``. Resolved once per process. Builds nothing.
        ``cached_only``: None instead of asking Terraform."""
        if env_name not in self._outputs:
            out = self._remembered(env_name)
            if out is None and cached_only:  # the deploy (which rebuilds what is gone) asks this way
                return None
            if out is None and self._state_lost(env_name):
                from stageflow.errors import NotDeployed

                raise NotDeployed(
                    f"{env_name} is not deployed on the local AWS emulator: the emulator's state is gone "
                    "(it was restarted or reset, and it keeps everything in memory), so what Terraform "
                    "built there and the deployment history went with it",
                    f"rebuild it: stageflow --local deploy {env_name} (or make demo); see docs/runbook.md",
                )
            if out is None:
                from stageflow.terraform.api import outputs as tf_outputs

                out = tf_outputs(self, env_name)  # NotDeployed (exit 2) when Terraform has none
                self.remember_outputs(env_name, out)
            self._outputs[env_name] = out
        return self._outputs[env_name]

    # -- one environment, wired -------------------------------------------------------------------------
    def environment(self, env_name: str, outputs: DeployOutputs | None = None) -> Context:
        """The core's ports for one environment: history, alias router, publisher, notifier, gates."""
        if env_name in self._envs and outputs is None:
            return self._envs[env_name]
        from stageflow.deploy.canary import Context
        from stageflow.deploy.gates import GateReader, default_judge
        from stageflow.deploy.publish import LambdaPublisher
        from stageflow.deploy.traffic import AliasTraffic
        from stageflow.dora import publish_delivery_metrics
        from stageflow.history import DynamoHistory
        from stageflow.metrics.cloudwatch import CloudWatchAlarms

        env = self.env(env_name)
        out = outputs or self.outputs(env_name)
        lam = self.aws.client("lambda")
        history = DynamoHistory(
            self.aws.client("dynamodb"), out.history_table, self.config.service.name, env.name
        )
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
            service=self.config.service.name,
            outputs=out,
            history=history,
            traffic=AliasTraffic(lam, out.function_name, out.alias_name),
            publisher=LambdaPublisher(lam, out.function_name, out.alias_name),
            notifier=self.notifier(env, out),
            gates=gates,
            reporter=self.reporter,
            clock_for=lambda: self.run_clock(history),
            feed_for=lambda scenario, start: self.traffic_feed(out, scenario, start),
            delivery=lambda dep: publish_delivery_metrics(self.aws.client("cloudwatch"), dep),
        )
        self._envs[env_name] = ctx
        return ctx

    def notifier(self, env: EnvironmentConfig, out: DeployOutputs):
        from stageflow.notify import Notifiers, SlackNotifier, SnsNotifier

        channels = []
        topic = env.notifications.sns_topic_arn
        if topic:
            arn = out.topic_arn if topic == "from-terraform" else topic
            channels.append(SnsNotifier(self.aws.client("sns"), arn))
        hook_var = env.notifications.slack_webhook_env
        url = os.environ.get(hook_var) if hook_var else None
        if url:
            if self.local:  # the local guard: nothing leaves this machine in local mode
                from urllib.parse import urlsplit

                from stageflow.aws import check_local_endpoint

                parts = urlsplit(url)
                check_local_endpoint(f"{parts.scheme}://{parts.netloc}")
            channels.append(SlackNotifier(url))
        return Notifiers(channels, self.reporter)
