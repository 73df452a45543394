"""The settings of ``stageflow.toml`` as frozen dataclasses, and the design's defaults per environment."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stageflow.errors import UnknownEnvironmentError
from stageflow.freeze.model import FreezeWindow
from stageflow.invokecheck import Smoke

DEFAULT_CONFIG_NAME = "stageflow.toml"
FROM_TERRAFORM = "from-terraform"
ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# A Lambda environment variable's name: a letter, then letters, digits and '_' (two characters at least).
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]+$")
# Set by the service module from the function's own names (infrastructure/modules/service/lambda.tf).
TERRAFORM_VARIABLES = ("SERVICE_NAME", "ENVIRONMENT", "PARAMETER_PREFIX")
# Lambda refuses these (its runtime sets them).
LAMBDA_RESERVED_VARIABLES = frozenset(
    {
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
ENVIRONMENT_MAX_BYTES = 4096  # Lambda's limit for all of a function's variables together


@dataclass(frozen=True)
class CanaryStep:
    weight: int  # percent of alias traffic on the new version during this step
    bake_minutes: float = 0.0  # how long to watch the gates at this weight
    approval: bool = False  # pause for a person after this step, before the next
    # Optional per-step gates (None: the environment's [gates] value). The step at 100 % also
    # governs post-promotion monitoring; the design tightens the error gate to 0.5 % there.
    max_error_rate: float | None = None
    max_p95_ms: float | None = None


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[CanaryStep, ...]
    post_promotion_minutes: float = 30.0
    check_interval_seconds: float = 60.0  # how often the gates are read during a bake
    max_extensions: int = 2  # bake extensions on inconclusive data before holding for a person
    # Failed metric reads in a row (throttling, 5xx, timeouts after botocore's retries) tolerated as
    # "no data" while holding the weight; one more rolls the canary back (Argo's consecutiveErrorLimit).
    consecutive_error_limit: int = 4


@dataclass(frozen=True)
class Gates:
    max_error_rate: float = 0.01  # fraction: 0.01 is 1 %
    max_p95_ms: float = 5000.0
    alarms: tuple[str, ...] = ()  # extra CloudWatch alarm names; Terraform's alarm outputs are added
    min_invocations: int = 50  # fewer canary invocations in a window than this is "no data"
    # The statistical judge (docs/judge.md): significance at the end of a bake window and at the looks
    # in between (stricter: the window is looked at about once a minute), the effect-size margins a
    # canary must exceed to count as worse than stable, and the latency minutes needed to judge.
    alpha: float = 0.003
    interim_alpha: float = 1e-5
    relative_margin: float = 0.25  # canary worse than stable by more than 25 % (errors and p95)
    error_margin: float = 0.001  # ... and its error rate more than 0.1 percentage points above stable's
    min_latency_minutes: int = 5
    # Optional p99 latency gate (None: off).
    max_p99_ms: float | None = None
    # Change points (docs/judge.md): a gate broken in every one of the last ``sustained_minutes``
    # minutes fails (the design's "for 10 consecutive minutes"); a shorter breach of at least
    # ``sustained_min_minutes`` fails when its evidence is overwhelming (p < interim_alpha).
    sustained_minutes: int = 10
    sustained_min_minutes: int = 5
    # The sliding recent-window test: every check again over the last ``recent_minutes`` minutes
    # (across steps), at ``recent_alpha``; 0 turns it off.
    recent_minutes: int = 10
    recent_alpha: float = 1e-4
    # Throughput vs stable: the canary serving more than this fraction fewer invocations per percent
    # of weight than stable (throttling) is a finding.
    max_throughput_drop: float = 0.2
    # Per-step overrides, filled from the canary steps: (weight, max_error_rate, max_p95_ms).
    step_overrides: tuple[tuple[int, float | None, float | None], ...] = ()

    def for_weight(self, weight: int | None) -> Gates:
        """The gates in force at ``weight`` % (the step's overrides applied, if it has any)."""
        if weight is None:
            return self
        for w, err, p95 in self.step_overrides:
            if w == weight:
                changes = {}
                if err is not None:
                    changes["max_error_rate"] = err
                if p95 is not None:
                    changes["max_p95_ms"] = p95
                return dataclasses.replace(self, **changes) if changes else self
        return self


@dataclass(frozen=True)
class Approvals:
    """Who must answer a pause and how long it waits (``[environments.NAME.approvals]``).

    ``required`` distinct identities approve before the pause continues; each of ``roles`` needs one
    approver who holds it (``[approvers]`` maps identities to roles). A pause that passes its deadline
    ends by itself: before the canary ``before_canary_timeout_minutes`` (design: 24 h) then rejected,
    at a canary step ``timeout_minutes`` (design: 2 h) then rolled back."""

    before_canary: bool = False
    between_steps: bool = False
    timeout_minutes: float = 120.0  # a pause at a canary step (between steps, inconclusive)
    before_canary_timeout_minutes: float = 1440.0  # the pause before production's canary
    required: int = 1  # distinct approvers
    roles: tuple[str, ...] = ()  # each needs one approver holding it

    def deadline_minutes(self, approval_for: str) -> float:
        return self.before_canary_timeout_minutes if approval_for == "before_canary" else self.timeout_minutes


@dataclass(frozen=True)
class Notifications:
    sns_topic_arn: str | None = FROM_TERRAFORM  # an ARN, "from-terraform", or "" for none
    slack_webhook_env: str | None = "STAGEFLOW_SLACK_WEBHOOK"  # env var holding the webhook URL
    # the S3 bucket the approval notice's HTML report goes to (presigned until the pause's deadline);
    # "" for none. STAGEFLOW_REPORT_BUCKET (the pipeline sets its artifact bucket) takes precedence.
    report_bucket: str = ""


@dataclass(frozen=True)
class TerraformSettings:
    root: str
    var_file: str = "terraform.tfvars"
    backend_config: str = "backend.hcl"
    workspace: str | None = None


@dataclass(frozen=True)
class EnvironmentTests:
    """What the pipeline runs against an environment after its deploy (smoke always), and the load
    profile of ``stageflow load`` / ``nox -s load`` (users, spawn rate per second, duration)."""

    integration: bool = False  # the service's integration suite after the deploy (design: dev, staging)
    load: bool = False  # the load test after the deploy (design: staging)
    users: int = 5
    spawn_rate: float = 5.0
    seconds: int = 10
    url: str | None = None  # on AWS, instead of the front door's URL (local mode: the loopback front door)


@dataclass(frozen=True)
class ServiceTests:
    """The service's own test suites (paths relative to the repository root), the coverage floor, and the
    requirement files of its test environment (relative to ``service.source``; None: the default,
    ``requirements.txt`` plus ``requirements-dev.txt`` when present)."""

    unit: str = "app/tests/unit"
    integration: str = "app/tests/integration"
    locustfile: str = "app/tests/load/locustfile.py"
    coverage_floor: float = 80.0  # percent of the service's lines the unit tests must cover
    requirements: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP front door's stage (``[environments.NAME.api]``): API Gateway's steady-state rate and burst
    limits (requests per second / requests) and the GET cache's TTL in seconds (0: no cache)."""

    rate_limit: int = 1000
    burst_limit: int = 2000
    cache_ttl_s: int = 0


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    terraform: TerraformSettings
    canary: CanaryPolicy
    gates: Gates = field(default_factory=Gates)
    approvals: Approvals = field(default_factory=Approvals)
    notifications: Notifications = field(default_factory=Notifications)
    secrets: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # plain variables of the function's environment (not secret: shown in plans and diffs)
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    protected: bool = False  # destructive Terraform changes need --allow-destroy or an approval
    memory_mb: int = 512
    timeout_s: int = 30
    log_retention_days: int = 30
    xray: bool = False
    function: str = FROM_TERRAFORM  # a Lambda function name, or read from Terraform outputs
    alias: str = "live"
    registry: str | None = None  # image registry; None: ECR in AWS, the local registry in local mode
    tests: EnvironmentTests = field(default_factory=EnvironmentTests)
    api: ApiSettings = field(default_factory=ApiSettings)
    freeze: tuple[FreezeWindow, ...] = ()  # [environments.NAME.freeze] windows: deploys refused inside


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    region: str = "us-east-1"
    source: str = "app"  # the service's source directory, packaged for Lambda
    handler: str = "service.handler.handler"
    runtime: str = "python3.11"
    architecture: str = "x86_64"  # the function's: x86_64 or arm64 (requirements' wheels are for it)
    timeout_s: int = 30  # the function's timeout; an environment's timeout_s overrides it
    smoke: Smoke = field(default_factory=Smoke)  # the pre-traffic check and the smoke stage's event
    # globs relative to source: what is packaged (packaging/selection.py; default: all but tests/tooling)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # the function the HTTP front door invokes (a [functions.KEY] key); None: the first function
    http_function: str | None = None


@dataclass(frozen=True)
class FunctionConfig:
    """One function of the service: a ``[functions.KEY]`` table (``config/functions.py``: handler
    required; memory and timeout in the environment's ranges; plain variables merged over the
    environment's, the function's win; smoke as ``service.smoke``), or the one function of a service
    configured by ``[service] handler`` (its key is then the service's name). ``None``: the
    environment's (memory, timeout) or no function-specific variables/smoke."""

    key: str
    handler: str
    memory_mb: int | None = None
    timeout_s: int | None = None
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    smoke: Smoke = field(default_factory=Smoke)


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path  # the repository root: paths in the file are relative to it
    service: ServiceConfig
    environments: Mapping[str, EnvironmentConfig]
    tests: ServiceTests = field(default_factory=ServiceTests)
    # the [functions.KEY] tables in file order; empty: one function from [service] (see ``functions``)
    function_tables: tuple[FunctionConfig, ...] = ()
    # [approvers]: identity (AWS role session name or user name; --as NAME locally) -> its roles
    approvers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def functions(self) -> tuple[FunctionConfig, ...]:
        """Every function of the release (never empty): the ``[functions.*]`` tables, or the one function
        ``[service]`` describes, keyed by the service's name."""
        if self.function_tables:
            return self.function_tables
        svc = self.service
        return (FunctionConfig(svc.name, svc.handler, smoke=svc.smoke),)

    @property
    def multi_function(self) -> bool:
        """The service has ``[functions.*]`` tables: its functions are named ``<service>-<key>-<env>``
        (a table keyed by the service's own name keeps ``<service>-<env>``); a one-function service keeps
        ``<service>-<env>`` (:func:`stageflow.config.functions.lambda_function_name`)."""
        return bool(self.function_tables)

    def env(self, name: str) -> EnvironmentConfig:
        try:
            return self.environments[name]
        except KeyError:
            raise UnknownEnvironmentError(name, tuple(self.environments)) from None

    @property
    def environment_names(self) -> tuple[str, ...]:
        return tuple(self.environments)


# -- the design's defaults per environment ---------------------------------------------------------
def _steps(bakes: tuple[float, float], approval: bool) -> tuple[CanaryStep, ...]:
    return (
        CanaryStep(10, bakes[0], approval),
        CanaryStep(50, bakes[1], approval),
        CanaryStep(100, 0.0, False),
    )


DEFAULT_ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "dev": dict(
        memory_mb=256,
        log_retention_days=14,
        xray=False,
        protected=False,
        canary=CanaryPolicy(_steps((5, 5), False), post_promotion_minutes=5),
        approvals=Approvals(False, False),
        tests=EnvironmentTests(integration=True),
        api=ApiSettings(rate_limit=1000, burst_limit=2000, cache_ttl_s=0),
    ),
    "staging": dict(
        memory_mb=512,
        log_retention_days=30,
        xray=True,
        protected=False,
        canary=CanaryPolicy(_steps((10, 10), False), post_promotion_minutes=15),
        approvals=Approvals(False, False),
        # the design's full suite on staging: integration, then 100 users for 5 minutes
        tests=EnvironmentTests(integration=True, load=True, users=100, spawn_rate=10.0, seconds=300),
        # the design's API throttling and caching; burst: AWS's account default (5,000) caps it
        api=ApiSettings(rate_limit=5000, burst_limit=5000, cache_ttl_s=300),
    ),
    "prod": dict(
        memory_mb=512,
        log_retention_days=90,
        xray=True,
        protected=True,
        canary=CanaryPolicy(_steps((15, 15), True), post_promotion_minutes=30),
        # the design: DevOps and the product owner, two people
        approvals=Approvals(before_canary=True, between_steps=True, required=2),
        tests=EnvironmentTests(),
        api=ApiSettings(rate_limit=10000, burst_limit=5000, cache_ttl_s=900),
    ),
}
GENERIC_ENVIRONMENT: dict[str, Any] = dict(
    memory_mb=512,
    log_retention_days=30,
    xray=False,
    protected=False,
    canary=CanaryPolicy(_steps((10, 10), False), post_promotion_minutes=15),
    approvals=Approvals(False, False),
    tests=EnvironmentTests(),
    api=ApiSettings(),
)
