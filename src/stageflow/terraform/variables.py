"""The service's values for Terraform, from ``stageflow.toml``: one generated variables file per run.

The Terraform service writes :data:`VAR_FILE` into the environment's working directory
(``<state_dir>/terraform/<env>/<mode>-<hash>/``) and passes it as the *last* ``-var-file``, so its
values win over the root's ``terraform.tfvars`` (which keeps only infrastructure settings). A file
rather than ``TF_VAR_*``: Terraform gives ``TF_VAR_*`` the *lowest* precedence (a stale value left in a
tfvars file would silently win), maps and objects in ``TF_VAR_*`` are HCL text, and a file can be read
after the run. Only the variables the root declares are written (a root of one's own takes what it
declares; Terraform warns about values for undeclared variables). Secrets never go here: they reach
Terraform as ``TF_VAR_*`` in its environment only (:func:`stageflow.secrets.sinks.tf_vars`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageflow.function_config import wanted_all

if TYPE_CHECKING:
    from stageflow.config import Config

VAR_FILE = "stageflow.tfvars.json"
_VARIABLE_RE = re.compile(r'^\s*variable\s+"([A-Za-z_][A-Za-z0-9_-]*)"', re.MULTILINE)


def package_paths(config: Config) -> tuple[Path, Path]:
    """Where the build writes the service zip and the rollback zip (packaging.lambda_zip)."""
    from stageflow.packaging.lambda_zip import ROLLBACK_ZIP

    out = config.root / "build" / "lambda"
    return out / f"{config.service.name}.zip", out / ROLLBACK_ZIP


def service_variables(config: Config, env_name: str, root: Path) -> dict[str, Any]:
    """Every value of the service the environment roots take, by root variable name. Paths are
    relative to ``root`` (Terraform's working directory), as a hand-written tfvars would have them:
    the same checkout anywhere gives the same plan.

    ``functions`` maps every function's key (``[functions.KEY]``; the service's name for a
    one-function service) to its handler, memory, timeout and plain variables (the environment's with
    the function's over them); the service module names each ``<service>-<key>-<env>``, the key equal
    to the service's name ``<service>-<env>``."""
    specs = wanted_all(config, env_name)
    first = next(iter(specs.values()))
    env = config.env(env_name)
    service_zip, rollback_zip = package_paths(config)
    return {
        "service_name": config.service.name,
        "region": config.service.region,
        "package_path": os.path.relpath(service_zip, root),
        "rollback_package_path": os.path.relpath(rollback_zip, root),
        "runtime": first.runtime,
        "architectures": [first.architecture],
        "log_retention_days": env.log_retention_days,
        "enable_xray_tracing": env.xray,
        # the front door's stage ([environments.NAME.api]; modules/front_door)
        "api_throttle_rate_limit": env.api.rate_limit,
        "api_throttle_burst_limit": env.api.burst_limit,
        "api_cache_ttl_seconds": env.api.cache_ttl_s,
        "http_function": config.service.http_function or "",  # empty: the first function
        "functions": {
            key: {
                "handler": spec.handler,
                "memory_size": spec.memory_mb,
                "timeout_seconds": spec.timeout_s,
                "environment": dict(spec.environment),
            }
            for key, spec in specs.items()
        },
    }


def declared_variables(root: Path) -> frozenset[str]:
    """The variables the root module declares (its own ``*.tf`` files)."""
    names: set[str] = set()
    for f in sorted(Path(root).glob("*.tf")):
        names.update(_VARIABLE_RE.findall(f.read_text(encoding="utf-8", errors="replace")))
    return frozenset(names)


def root_variables(config: Config, env_name: str, root: Path) -> dict[str, Any]:
    """:func:`service_variables` restricted to what ``root`` declares."""
    declared = declared_variables(root)
    return {k: v for k, v in service_variables(config, env_name, root).items() if k in declared}


def var_file_text(values: dict[str, Any]) -> str:
    """The generated variables file's text (also what the infrastructure inputs' digest reads)."""
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


def write_var_file(work_dir: Path, values: dict[str, Any]) -> Path:
    """``<work_dir>/stageflow.tfvars.json`` (rewritten only when it changed)."""
    path = Path(work_dir) / VAR_FILE
    text = var_file_text(values)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_name(f".{VAR_FILE}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path
