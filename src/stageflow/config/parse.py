"""``stageflow.toml``'s tables → :mod:`stageflow.config.model`, strictly: an unknown key, a value of the
wrong type or out of range is a :class:`~stageflow.errors.ConfigError` naming the file and dotted key."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stageflow.config.approvals import parse_approvals, parse_approvers
from stageflow.config.functions import parse_functions
from stageflow.config.model import (
    DEFAULT_ENVIRONMENTS,
    ENV_NAME_RE,
    ENVIRONMENT_MAX_BYTES,
    FROM_TERRAFORM,
    GENERIC_ENVIRONMENT,
    LAMBDA_RESERVED_VARIABLES,
    TERRAFORM_VARIABLES,
    VARIABLE_NAME_RE,
    ApiSettings,
    Approvals,
    CanaryPolicy,
    CanaryStep,
    Config,
    EnvironmentConfig,
    EnvironmentTests,
    Gates,
    Notifications,
    ServiceConfig,
    ServiceTests,
    TerraformSettings,
)
from stageflow.config.smoke import parse_smoke
from stageflow.errors import ConfigError
from stageflow.freeze.windows import parse_freeze
from stageflow.pythons import runtime_problem
from stageflow.secrets.refs import reference_problem

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# -- validation helpers ----------------------------------------------------------------------------
class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(str(self.path), key, reason)

    def table(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {_typename(value)}")
        return value

    def check_keys(self, table: dict, key: str, allowed: set[str]) -> None:
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise self.fail(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, table: dict, key: str, name: str, kind, default, *, lo=None, hi=None):
        if name not in table:
            return default
        value = table[name]
        full = f"{key}.{name}" if key else name
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise self.fail(full, f"must be {kind.__name__}, got {_typename(value)}")
        if kind is float:
            value = float(value)
            if not math.isfinite(value):  # NaN passes every < / > comparison: refuse it by name
                raise self.fail(full, f"must be a finite number, got {value}")
        if lo is not None and value < lo:
            raise self.fail(full, f"must be at least {lo}, got {value}")
        if hi is not None and value > hi:
            raise self.fail(full, f"must be at most {hi}, got {value}")
        return value


def _typename(value: Any) -> str:
    return {dict: "table", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# -- parsing ---------------------------------------------------------------------------------------
def _parse_steps(r: _Reader, raw: Any, key: str, default_approval: bool) -> tuple[CanaryStep, ...]:
    if not isinstance(raw, list) or not raw:
        raise r.fail(key, "must be a non-empty array of {weight, bake_minutes, approval} tables")
    steps: list[CanaryStep] = []
    for i, item in enumerate(raw):
        k = f"{key}[{i}]"
        item = r.table(item, k)
        r.check_keys(item, k, _field_names(CanaryStep))
        if "weight" not in item:
            raise r.fail(f"{k}.weight", "is required")
        weight = item["weight"]
        if not isinstance(weight, int) or isinstance(weight, bool):
            raise r.fail(f"{k}.weight", f"must be an integer percent, got {_typename(weight)}")
        if not 0 <= weight <= 100:
            raise r.fail(f"{k}.weight", f"must be between 0 and 100, got {weight}")
        if steps and weight <= steps[-1].weight:
            raise r.fail(f"{k}.weight", f"steps must increase: {weight} follows {steps[-1].weight}")
        bake = r.get(item, k, "bake_minutes", float, 0.0, lo=0)
        approval = r.get(item, k, "approval", bool, default_approval and weight < 100)
        max_err = r.get(item, k, "max_error_rate", float, None, lo=0, hi=1)
        max_p95 = r.get(item, k, "max_p95_ms", float, None, lo=1)
        steps.append(CanaryStep(weight, bake, approval, max_err, max_p95))
    if steps[0].weight == 0:
        raise r.fail(f"{key}[0].weight", "the first step must send some traffic (weight > 0)")
    if steps[-1].weight != 100:
        raise r.fail(f"{key}[{len(steps) - 1}].weight", f"the last step must be 100, got {steps[-1].weight}")
    return tuple(steps)


def _parse_canary(r: _Reader, raw: dict, key: str, base: dict, approvals: Approvals) -> CanaryPolicy:
    canary_raw = r.table(raw.get("canary", {}), f"{key}.canary")
    r.check_keys(canary_raw, f"{key}.canary", _field_names(CanaryPolicy))
    cb: CanaryPolicy = base["canary"]
    if "steps" in canary_raw:
        steps = _parse_steps(r, canary_raw["steps"], f"{key}.canary.steps", approvals.between_steps)
    else:
        steps = tuple(
            dataclasses.replace(s, approval=approvals.between_steps and s.weight < 100) for s in cb.steps
        )
    canary = CanaryPolicy(
        steps=steps,
        post_promotion_minutes=r.get(
            canary_raw, f"{key}.canary", "post_promotion_minutes", float, cb.post_promotion_minutes, lo=0
        ),
        check_interval_seconds=r.get(
            canary_raw,
            f"{key}.canary",
            "check_interval_seconds",
            float,
            cb.check_interval_seconds,
            lo=1,
            hi=3600,
        ),
        max_extensions=r.get(
            canary_raw, f"{key}.canary", "max_extensions", int, cb.max_extensions, lo=0, hi=20
        ),
        consecutive_error_limit=r.get(
            canary_raw,
            f"{key}.canary",
            "consecutive_error_limit",
            int,
            cb.consecutive_error_limit,
            lo=0,
            hi=100,
        ),
    )
    return canary


def _parse_gates(r: _Reader, raw: dict, key: str, canary: CanaryPolicy) -> Gates:
    gates_raw = r.table(raw.get("gates", {}), f"{key}.gates")
    gk = f"{key}.gates"
    r.check_keys(gates_raw, gk, _field_names(Gates) - {"step_overrides"})
    alarms = r.get(gates_raw, gk, "alarms", list, [])
    if not all(isinstance(a, str) and a for a in alarms):
        raise r.fail(f"{gk}.alarms", "must be an array of alarm names")
    gates = Gates(
        max_error_rate=r.get(gates_raw, gk, "max_error_rate", float, Gates.max_error_rate, lo=0, hi=1),
        max_p95_ms=r.get(gates_raw, gk, "max_p95_ms", float, Gates.max_p95_ms, lo=1),
        alarms=tuple(alarms),
        min_invocations=r.get(gates_raw, gk, "min_invocations", int, Gates.min_invocations, lo=1),
        alpha=r.get(gates_raw, gk, "alpha", float, Gates.alpha, lo=1e-12, hi=0.5),
        interim_alpha=r.get(gates_raw, gk, "interim_alpha", float, Gates.interim_alpha, lo=1e-12, hi=0.5),
        relative_margin=r.get(gates_raw, gk, "relative_margin", float, Gates.relative_margin, lo=0, hi=100),
        error_margin=r.get(gates_raw, gk, "error_margin", float, Gates.error_margin, lo=0, hi=1),
        min_latency_minutes=r.get(
            gates_raw, gk, "min_latency_minutes", int, Gates.min_latency_minutes, lo=1, hi=1440
        ),
        max_p99_ms=r.get(gates_raw, gk, "max_p99_ms", float, None, lo=1),
        sustained_minutes=r.get(
            gates_raw, gk, "sustained_minutes", int, Gates.sustained_minutes, lo=1, hi=1440
        ),
        sustained_min_minutes=r.get(
            gates_raw, gk, "sustained_min_minutes", int, Gates.sustained_min_minutes, lo=1, hi=1440
        ),
        recent_minutes=r.get(gates_raw, gk, "recent_minutes", int, Gates.recent_minutes, lo=0, hi=1440),
        recent_alpha=r.get(gates_raw, gk, "recent_alpha", float, Gates.recent_alpha, lo=1e-12, hi=0.5),
        max_throughput_drop=r.get(
            gates_raw, gk, "max_throughput_drop", float, Gates.max_throughput_drop, lo=0.01, hi=1
        ),
        step_overrides=tuple(
            (s.weight, s.max_error_rate, s.max_p95_ms)
            for s in canary.steps
            if s.max_error_rate is not None or s.max_p95_ms is not None
        ),
    )
    if gates.interim_alpha > gates.alpha:
        raise r.fail(
            f"{gk}.interim_alpha", f"must not exceed alpha ({gates.interim_alpha:g} > {gates.alpha:g})"
        )
    if gates.recent_alpha > gates.alpha:
        raise r.fail(
            f"{gk}.recent_alpha", f"must not exceed alpha ({gates.recent_alpha:g} > {gates.alpha:g})"
        )
    if gates.sustained_min_minutes > gates.sustained_minutes:
        raise r.fail(
            f"{gk}.sustained_min_minutes",
            f"must not exceed sustained_minutes ({gates.sustained_min_minutes} > {gates.sustained_minutes})",
        )
    return gates


def _parse_terraform(r: _Reader, raw: dict, key: str, name: str) -> TerraformSettings:
    tf_raw = r.table(raw.get("terraform", {}), f"{key}.terraform")
    tk = f"{key}.terraform"
    r.check_keys(tf_raw, tk, _field_names(TerraformSettings))
    terraform = TerraformSettings(
        root=r.get(tf_raw, tk, "root", str, f"infrastructure/environments/{name}"),
        var_file=r.get(tf_raw, tk, "var_file", str, "terraform.tfvars"),
        backend_config=r.get(tf_raw, tk, "backend_config", str, "backend.hcl"),
        workspace=r.get(tf_raw, tk, "workspace", str, None),
    )
    return terraform


def _parse_notifications(r: _Reader, raw: dict, key: str) -> Notifications:
    n_raw = r.table(raw.get("notifications", {}), f"{key}.notifications")
    nk = f"{key}.notifications"
    r.check_keys(n_raw, nk, _field_names(Notifications))
    notifications = Notifications(
        sns_topic_arn=r.get(n_raw, nk, "sns_topic_arn", str, FROM_TERRAFORM) or None,
        slack_webhook_env=r.get(n_raw, nk, "slack_webhook_env", str, "STAGEFLOW_SLACK_WEBHOOK") or None,
        report_bucket=r.get(n_raw, nk, "report_bucket", str, ""),
    )
    if notifications.report_bucket and not BUCKET_RE.match(notifications.report_bucket):
        raise r.fail(f"{nk}.report_bucket", "must be an S3 bucket name (3-63 of a-z, 0-9, '.', '-')")
    return notifications


def _parse_secrets(r: _Reader, raw: dict, key: str) -> dict:
    """``NAME = "secretsmanager:NAME[#KEY]"`` or ``"ssm:/PATH"``."""
    s_raw = r.table(raw.get("secrets", {}), f"{key}.secrets")
    for sname, ref in s_raw.items():
        if (problem := reference_problem(sname, ref)) is not None:
            raise r.fail(f"{key}.secrets.{sname}", problem)
    return s_raw


def _parse_variables(r: _Reader, raw: dict, key: str, secrets: dict) -> dict[str, str]:
    """``NAME = "value"``: plain variables of the function's environment (secrets stay in ``secrets``)."""
    v_raw = r.table(raw.get("environment", {}), f"{key}.environment")
    for vname, value in v_raw.items():
        vk = f"{key}.environment.{vname}"
        if not VARIABLE_NAME_RE.match(vname):
            raise r.fail(vk, "names are a letter, then letters, digits or '_' (2 characters at least)")
        if not isinstance(value, str):
            raise r.fail(vk, f'must be a string, got {_typename(value)} (quote it: {vname} = "{value}")')
        if vname in secrets:
            raise r.fail(vk, f"{vname} is also in {key}.secrets: a variable is either plain or secret")
        if vname in TERRAFORM_VARIABLES:
            raise r.fail(vk, f"{vname} is set by the service module ({', '.join(TERRAFORM_VARIABLES)})")
        if vname in LAMBDA_RESERVED_VARIABLES:
            raise r.fail(vk, f"{vname} is reserved by AWS Lambda")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in v_raw.items())
    if size > ENVIRONMENT_MAX_BYTES:
        raise r.fail(f"{key}.environment", f"{size} bytes: Lambda takes at most {ENVIRONMENT_MAX_BYTES}")
    return dict(v_raw)


def _parse_tests(r: _Reader, raw: dict, key: str, base: dict) -> EnvironmentTests:
    t_raw = r.table(raw.get("tests", {}), f"{key}.tests")
    tk2 = f"{key}.tests"
    r.check_keys(t_raw, tk2, _field_names(EnvironmentTests))
    tb: EnvironmentTests = base["tests"]
    url = r.get(t_raw, tk2, "url", str, tb.url) or None
    if url is not None and not re.match(r"^https?://[^\s/]+", url):
        raise r.fail(f"{tk2}.url", f"must be an http(s) URL, got {url!r}")
    tests = EnvironmentTests(
        integration=r.get(t_raw, tk2, "integration", bool, tb.integration),
        load=r.get(t_raw, tk2, "load", bool, tb.load),
        users=r.get(t_raw, tk2, "users", int, tb.users, lo=1, hi=1000),
        spawn_rate=r.get(t_raw, tk2, "spawn_rate", float, tb.spawn_rate, lo=0.1, hi=1000),
        seconds=r.get(t_raw, tk2, "seconds", int, tb.seconds, lo=1, hi=3600),
        url=url,
    )
    return tests


def _parse_environment(
    r: _Reader, name: str, raw: dict, service: ServiceConfig, approvers: Mapping[str, tuple[str, ...]]
) -> EnvironmentConfig:
    key = f"environments.{name}"
    if not ENV_NAME_RE.match(name):
        raise r.fail(key, "environment names are lowercase letters, digits and '-'")
    base = DEFAULT_ENVIRONMENTS.get(name, GENERIC_ENVIRONMENT)
    raw = r.table(raw, key)
    simple = {
        "protected",
        "memory_mb",
        "timeout_s",
        "log_retention_days",
        "xray",
        "function",
        "alias",
        "registry",
    }
    tables = {
        "terraform",
        "canary",
        "gates",
        "approvals",
        "notifications",
        "secrets",
        "environment",
        "tests",
        "api",
        "freeze",
    }
    r.check_keys(raw, key, simple | tables)

    approvals = parse_approvals(r, raw, key, base, approvers)
    canary = _parse_canary(r, raw, key, base, approvals)
    gates = _parse_gates(r, raw, key, canary)
    terraform = _parse_terraform(r, raw, key, name)
    notifications = _parse_notifications(r, raw, key)
    s_raw = _parse_secrets(r, raw, key)
    variables = _parse_variables(r, raw, key, s_raw)
    tests = _parse_tests(r, raw, key, base)

    return EnvironmentConfig(
        name=name,
        tests=tests,
        api=_parse_api(r, raw, key, base),
        freeze=parse_freeze(r, raw, key),
        terraform=terraform,
        canary=canary,
        gates=gates,
        approvals=approvals,
        notifications=notifications,
        secrets=MappingProxyType(dict(s_raw)),
        environment=MappingProxyType(variables),
        protected=r.get(raw, key, "protected", bool, base["protected"]),
        memory_mb=r.get(raw, key, "memory_mb", int, base["memory_mb"], lo=128, hi=10240),
        timeout_s=r.get(raw, key, "timeout_s", int, service.timeout_s, lo=1, hi=900),
        log_retention_days=r.get(raw, key, "log_retention_days", int, base["log_retention_days"], lo=1),
        xray=r.get(raw, key, "xray", bool, base["xray"]),
        function=r.get(raw, key, "function", str, FROM_TERRAFORM),
        alias=r.get(raw, key, "alias", str, "live"),
        registry=r.get(raw, key, "registry", str, None),
    )


def _parse_package_globs(r: _Reader, svc_raw: dict) -> dict[str, tuple[str, ...]]:
    """``[service] include`` / ``exclude``: arrays of globs relative to ``service.source``."""
    from stageflow.packaging.selection import glob_problem

    out: dict[str, tuple[str, ...]] = {}
    for name in ("include", "exclude"):
        key = f"service.{name}"
        globs = r.get(svc_raw, "service", name, list, [])
        for i, g in enumerate(globs):
            if not isinstance(g, str):
                raise r.fail(f"{key}[{i}]", f"must be a string glob, got {_typename(g)}")
            why = glob_problem(g)
            if why:
                raise r.fail(f"{key}[{i}]", f"{g!r} {why}")
        out[name] = tuple(globs)
    return out


def _default_unit(root: Path, src: str) -> str:
    """``<source>/tests/unit``, or ``<source>/tests`` for a service whose tests have no ``unit`` folder."""
    tests = Path(root) / src / "tests"
    return f"{src}/tests" if tests.is_dir() and not (tests / "unit").is_dir() else f"{src}/tests/unit"


def _parse_requirements(r: _Reader, raw: dict, source: Path) -> tuple[str, ...] | None:
    """``[tests] requirements``: files of the service's test environment, relative to its source folder;
    each must exist there (a typo is exit 2 at load, not a pip error minutes later)."""
    if "requirements" not in raw:
        return None
    value, key = raw["requirements"], "tests.requirements"
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise r.fail(key, f"must be a non-empty array of file names, got {_typename(value)}")
    for name in value:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise r.fail(key, f"{name!r} must be a path inside service.source")
        if not (source / name).is_file():
            raise r.fail(key, f"no such file: {name!r} in {source}")
    return tuple(value)


def parse(data: dict, path: Path, root: Path | None = None) -> Config:
    r = _Reader(path)
    r.check_keys(data, "", {"service", "environments", "tests", "functions", "approvers"})
    if "service" not in data:
        raise r.fail("service", "is required (a [service] table with at least name)")
    svc_raw = r.table(data["service"], "service")
    r.check_keys(svc_raw, "service", _field_names(ServiceConfig))
    name = r.get(svc_raw, "service", "name", str, None)
    if not name or not re.match(r"^[a-z][a-z0-9-]{1,40}$", name):
        raise r.fail("service.name", "is required: lowercase letters, digits and '-', 2-41 characters")
    service = ServiceConfig(
        name=name,
        region=r.get(svc_raw, "service", "region", str, "us-east-1"),
        source=r.get(svc_raw, "service", "source", str, "app"),
        handler=r.get(svc_raw, "service", "handler", str, ServiceConfig.handler),
        runtime=r.get(svc_raw, "service", "runtime", str, "python3.11"),
        architecture=r.get(svc_raw, "service", "architecture", str, "x86_64"),
        timeout_s=r.get(svc_raw, "service", "timeout_s", int, ServiceConfig.timeout_s, lo=1, hi=900),
        smoke=parse_smoke(r, svc_raw.get("smoke"), "service.smoke", (root or path.parent).resolve()),
        http_function=r.get(svc_raw, "service", "http_function", str, None),
        **_parse_package_globs(r, svc_raw),
    )
    if service.architecture not in ("x86_64", "arm64"):
        raise r.fail("service.architecture", f"must be x86_64 or arm64, not {service.architecture!r}")
    if (problem := runtime_problem(service.runtime)) is not None:
        raise r.fail("service.runtime", problem)
    st_raw = r.table(data.get("tests", {}), "tests")
    r.check_keys(st_raw, "tests", _field_names(ServiceTests))
    src = service.source.rstrip("/")
    service_tests = ServiceTests(
        unit=r.get(st_raw, "tests", "unit", str, _default_unit(root or path.parent, src)),
        integration=r.get(st_raw, "tests", "integration", str, f"{src}/tests/integration"),
        locustfile=r.get(st_raw, "tests", "locustfile", str, f"{src}/tests/load/locustfile.py"),
        coverage_floor=r.get(
            st_raw, "tests", "coverage_floor", float, ServiceTests.coverage_floor, lo=0, hi=100
        ),
        requirements=_parse_requirements(r, st_raw, (root or path.parent).resolve() / src),
    )
    envs_raw = r.table(data.get("environments", {}), "environments")
    names = list(DEFAULT_ENVIRONMENTS) + [n for n in envs_raw if n not in DEFAULT_ENVIRONMENTS]
    approvers = parse_approvers(r, data)
    environments = {n: _parse_environment(r, n, envs_raw.get(n, {}), service, approvers) for n in names}
    base = (root or path.parent).resolve()
    functions = parse_functions(r, data, svc_raw, service, environments, base, _parse_variables)
    config = Config(
        path=path,
        root=base,
        service=service,
        environments=MappingProxyType(environments),
        tests=service_tests,
        function_tables=functions,
        approvers=approvers,
    )
    return _check_http_function(r, config)


def _check_http_function(r: _Reader, config: Config) -> Config:
    """``[service] http_function`` names one of the service's functions (their keys)."""
    wanted, keys = config.service.http_function, [f.key for f in config.functions]
    if wanted is not None and wanted not in keys:
        raise r.fail(
            "service.http_function", f"{wanted!r} is not a function of the service ({', '.join(keys)})"
        )
    return config


def _parse_api(r: _Reader, raw: dict, key: str, base: dict) -> ApiSettings:
    """``[environments.NAME.api]``: the front door's stage throttling and cache (the design's defaults)."""
    b, k = base["api"], f"{key}.api"
    a_raw = r.table(raw.get("api", {}), k)
    r.check_keys(a_raw, k, _field_names(ApiSettings))
    return ApiSettings(
        rate_limit=r.get(a_raw, k, "rate_limit", int, b.rate_limit, lo=1, hi=10000),
        burst_limit=r.get(a_raw, k, "burst_limit", int, b.burst_limit, lo=1, hi=5000),
        cache_ttl_s=r.get(a_raw, k, "cache_ttl_s", int, b.cache_ttl_s, lo=0, hi=3600),
    )
