"""``[functions.KEY]`` tables: the functions of a service with several (issue 23 item 2).

Each table has ``handler`` (required) and optional ``memory_mb``, ``timeout_s`` (the environment's ranges;
absent: the environment's value), ``environment`` (plain variables, the rules of
``[environments.NAME.environment]``; merged over each environment's, the function's win, and the 4 KB
limit counted on the merge) and ``smoke`` (the contract of ``service.smoke``). ``KEY`` is lowercase
letters, digits and '-'. A service has either ``[service] handler`` (one function) or ``[functions.*]``
tables, never both. Every function's Lambda name (:func:`lambda_function_name`) must fit Lambda's 64
characters in every environment. Each problem is a ConfigError naming the key (exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stageflow.config.model import ENVIRONMENT_MAX_BYTES, EnvironmentConfig, FunctionConfig, ServiceConfig
from stageflow.config.smoke import parse_smoke

FUNCTION_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
RESERVED_KEY_RE = re.compile(r"^v[0-9]+$")
FUNCTION_KEYS = {"handler", "memory_mb", "timeout_s", "environment", "smoke"}
LAMBDA_NAME_MAX = 64  # Lambda's limit for a function name


def lambda_function_name(service: str, key: str, env: str) -> str:
    """The function's name in ``env``: ``<service>-<key>-<env>``; the function whose key is the
    service's own name (the one function of a ``[service] handler`` service, or a ``[functions.*]``
    table named after the service) keeps ``<service>-<env>``. The service module
    (infrastructure/modules/service/locals.tf) names them by the same rule."""
    return f"{service}-{env}" if key == service else f"{service}-{key}-{env}"


def merged_environment(env: EnvironmentConfig, function: FunctionConfig) -> dict[str, str]:
    """The function's plain variables in ``env``: the environment's, the function's over them."""
    return {**env.environment, **function.environment}


def parse_functions(
    r,
    data: dict,
    svc_raw: dict,
    service: ServiceConfig,
    environments: Mapping[str, EnvironmentConfig],
    root: Path,
    parse_variables: Callable[..., dict[str, str]],
) -> tuple[FunctionConfig, ...]:
    """The ``[functions.*]`` tables in file order (empty when there are none). ``r`` is the reader of
    :mod:`stageflow.config.parse`; ``parse_variables`` its reading of an ``environment`` table."""
    raw = r.table(data.get("functions", {}), "functions")
    if not raw:
        return ()
    for clash in ("handler", "smoke"):
        if clash in svc_raw:
            raise r.fail(
                f"service.{clash}",
                f"use [service] {clash} (one function) or [functions.*] tables (several), not both",
            )
    functions = tuple(_parse_one(r, key, value, root, parse_variables) for key, value in raw.items())
    for fn in functions:
        for env in environments.values():
            _check_in_environment(r, service, env, fn)
    return functions


def _parse_one(r, key: str, raw: Any, root: Path, parse_variables) -> FunctionConfig:
    fk = f"functions.{key}"
    if not FUNCTION_KEY_RE.match(key):
        raise r.fail(fk, "names are a lowercase letter, then lowercase letters, digits or '-' (1-31)")
    if key == "rollback" or RESERVED_KEY_RE.match(key):
        # <service>-rollback-<env> is the rollback function (and its alarm); <service>-vN-… the
        # per-version alarms (infrastructure/modules/service)
        raise r.fail(fk, f"{key!r} is reserved: the service module names its own resources so")
    table = r.table(raw, fk)
    r.check_keys(table, fk, FUNCTION_KEYS)
    handler = r.get(table, fk, "handler", str, None)
    if not handler or not handler.strip():
        raise r.fail(f"{fk}.handler", "is required (module.function, e.g. orders.api.handler)")
    return FunctionConfig(
        key=key,
        handler=handler,
        memory_mb=r.get(table, fk, "memory_mb", int, None, lo=128, hi=10240),
        timeout_s=r.get(table, fk, "timeout_s", int, None, lo=1, hi=900),
        environment=MappingProxyType(parse_variables(r, table, fk, {})),
        smoke=parse_smoke(r, table.get("smoke"), f"{fk}.smoke", root),
    )


def _check_in_environment(r, service: ServiceConfig, env: EnvironmentConfig, fn: FunctionConfig) -> None:
    fk = f"functions.{fn.key}"
    for name in fn.environment:
        if name in env.secrets:
            raise r.fail(
                f"{fk}.environment.{name}",
                f"{name} is also in environments.{env.name}.secrets: a variable is either plain or secret",
            )
    merged = merged_environment(env, fn)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in merged.items())
    if size > ENVIRONMENT_MAX_BYTES:
        raise r.fail(
            f"{fk}.environment",
            f"{size} bytes with environments.{env.name}.environment: Lambda takes at most "
            f"{ENVIRONMENT_MAX_BYTES}",
        )
    name = lambda_function_name(service.name, fn.key, env.name)
    if len(name) > LAMBDA_NAME_MAX:
        raise r.fail(
            fk,
            f"the function's name {name!r} in {env.name} has {len(name)} characters: Lambda takes at most "
            f"{LAMBDA_NAME_MAX} (shorten the service, function or environment name)",
        )
