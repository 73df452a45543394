"""The services the deploy chain uses, built once by the composition root (``Factory``) and passed to
:func:`stageflow.pipeline.deploy`: plain records of the concrete parts, nothing looked up later."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stageflow.aws import AwsClients
    from stageflow.config import Config, EnvironmentConfig
    from stageflow.deploy.canary import Context
    from stageflow.outputs_store import OutputsStore
    from stageflow.report import Reporter
    from stageflow.secrets.stores import Secret
    from stageflow.terraform.api import TerraformService


@dataclass(frozen=True)
class SecretStore:
    """Where an environment's secrets come from and where the deploy writes them: the secret stores
    (Secrets Manager, SSM) and the function's environment. ``clients`` is asked on first use."""

    config: Config
    clients: Callable[[], AwsClients]

    @property
    def aws(self) -> AwsClients:
        return self.clients()

    def resolve(self, env_name: str, **options) -> dict[str, Secret]:
        """Every secret of the environment (``{NAME: Secret}``), or one error listing every failure."""
        from stageflow.secrets import refs, stores

        table = self.config.env(env_name).secrets
        clients = {s: self.aws.client(s) for s in refs.sources(table)}  # only the stores it names
        return stores.resolve(env_name, table, **clients, **options)

    def resolve_pinned(self, env_name: str) -> tuple[dict[str, Secret], dict[str, str]]:
        """Every secret at its current version (values registered with the redactor), and
        ``{NAME: pinned reference}``: what the function's environment carries instead of the values."""
        from stageflow.secrets import refs, stores

        table = self.config.env(env_name).secrets
        clients = {s: self.aws.client(s) for s in refs.sources(table)}
        return stores.resolve_pinned(env_name, table, **clients)

    def update_lambda_env(
        self,
        function_name: str,
        values: Mapping[str, Secret],
        *,
        plain: Mapping[str, str] | None = None,
        only: Collection[str] | None = None,
    ):
        """Merge the secret and plain values into the function's environment (other keys kept, unless
        ``only`` names the keys it may hold)."""
        from stageflow.secrets import sinks

        return sinks.update_lambda_env(
            self.aws.client("lambda"), function_name, values, plain=plain, only=only
        )

    def function_configuration(self, function_name: str) -> Mapping[str, Any]:
        """``GetFunctionConfiguration`` of ``$LATEST`` (botocore errors pass through)."""
        return self.aws.client("lambda").get_function_configuration(FunctionName=function_name)

    def function_environment(self, function_name: str) -> Mapping[str, str]:
        """What the function's environment holds now (botocore errors pass through)."""
        cfg = self.aws.client("lambda").get_function_configuration(FunctionName=function_name)
        return (cfg.get("Environment") or {}).get("Variables") or {}


@dataclass(frozen=True)
class ImageBuilder:
    """The Docker image of the service: ``engine()`` reaches the engine (DockerEngineUnavailable when
    none answers), ``build(env_name, engine)`` builds, tags and pushes it to the environment's registry."""

    engine: Callable[[], Any]
    build: Callable[[str, Any], Any]  # -> docker_build.BuildResult


@dataclass(frozen=True)
class ServiceChecks:
    """The service's own checks around a deploy (:mod:`stageflow.checks`): before the build and after
    the canary."""

    lint: Callable[[], Any]
    unit: Callable[[], Any]
    smoke: Callable[..., Any]  # (environment, *, paused: awaiting an approval) -> a stage result
    integration: Callable[..., Any]
    load: Callable[..., Any]


@dataclass(frozen=True)
class DeployServices:
    """What the deploy chain uses, built once by the composition root (``Factory.deploy_services``)."""

    config: Config
    reporter: Reporter
    env: Callable[[str], EnvironmentConfig]  # an environment's settings (refuses what the target may not)
    # (environment, the --emergency reason or None) -> the overridden freeze or None; exit 2 when frozen
    freeze_check: Callable[[str, str | None], Any]
    package: Callable[[], Any]  # the Lambda packages (lambda_zip.Packages), written where the roots read
    security_gate: Callable[[Any], Any]  # (the service artifact or None) -> security.GateReport
    images: ImageBuilder
    terraform: TerraformService
    outputs: OutputsStore
    secrets: SecretStore
    environment: Callable[..., Context]  # (environment, outputs=None) -> the wired ports
    start_canary: Callable[..., Any]  # deploy.canary.start: (ctx, config, **options) -> StartResult
    checks: ServiceChecks
    describe_target: Callable[[str], tuple[str, list[str]]]


@dataclass(frozen=True)
class ServiceEndpoint:
    """The deployed service, for the integration suite and load tests: its HTTP base URL (the front
    door, or ``tests.url`` on AWS) and the function alias behind it."""

    url: str | None
    lambda_client: object | None = None
    function: str | None = None
    alias: str | None = None
