"""What ``stageflow.toml`` says the service's functions are, in one environment, and how each live
function differs from it.

:func:`wanted_all` (every function by key; :func:`wanted` the first) is the one reading of the
configuration that both Terraform's variables (:mod:`stageflow.terraform.variables`) and the deploy's
comparison use, so what Terraform creates and what the deploy checks cannot disagree.
:func:`differences` compares one spec with ``GetFunctionConfiguration`` and returns one line per
difference (plain variables with their values; secret variables are not compared here: the secrets
stage writes them); :func:`write_environments` does it for every function of the release.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stageflow.config.model import TERRAFORM_VARIABLES
from stageflow.errors import ConfigError
from stageflow.secrets.refs import env_var

if TYPE_CHECKING:
    from stageflow.config import Config
    from stageflow.outputs import FunctionTarget
    from stageflow.services import SecretStore


@dataclass(frozen=True)
class FunctionSpec:
    """One function as configured (Lambda's names in comments)."""

    handler: str  # Handler
    runtime: str  # Runtime
    architecture: str  # Architectures[0]
    memory_mb: int  # MemorySize
    timeout_s: int  # Timeout
    environment: Mapping[str, str]  # Environment.Variables: the plain ones
    secret_names: tuple[str, ...] = ()  # Environment.Variables: written by the secrets stage

    @property
    def managed_names(self) -> frozenset[str]:
        """Every variable the function's environment may hold: the service module's, the plain ones,
        the secrets' references (``STAGEFLOW_SECRET_<NAME>``). Anything else is left over (removed by
        the next deploy) — including a secret's *value* under its own name from before references."""
        refs = frozenset(env_var(n) for n in self.secret_names)
        return frozenset(TERRAFORM_VARIABLES) | frozenset(self.environment) | refs


def wanted_all(config: Config, env_name: str) -> dict[str, FunctionSpec]:
    """Every function of the service in ``env_name``, by key, in the file's order: memory and timeout
    the function's or else the environment's, plain variables the environment's with the function's
    over them (:func:`stageflow.config.functions.merged_environment`)."""
    from stageflow.config.functions import merged_environment

    env = config.env(env_name)
    svc = config.service
    return {
        fn.key: FunctionSpec(
            handler=fn.handler,
            runtime=svc.runtime,
            architecture=svc.architecture,
            memory_mb=fn.memory_mb if fn.memory_mb is not None else env.memory_mb,
            timeout_s=fn.timeout_s if fn.timeout_s is not None else env.timeout_s,
            environment=dict(sorted(merged_environment(env, fn).items())),
            secret_names=tuple(sorted(env.secrets)),
        )
        for fn in config.functions
    }


def with_environment(specs: Mapping[str, FunctionSpec], extra: Mapping[str, str]) -> dict[str, FunctionSpec]:
    """``specs`` with ``extra`` (the root's ``function_environment`` output) over each one's plain
    variables: what Terraform wants in every function's environment is written, compared and kept like
    stageflow.toml's."""
    if not extra:
        return dict(specs)
    return {
        key: dataclasses.replace(spec, environment=dict(sorted({**spec.environment, **extra}.items())))
        for key, spec in specs.items()
    }


def wanted(config: Config, env_name: str) -> FunctionSpec:
    """The first function's (the only one of a one-function service)."""
    return next(iter(wanted_all(config, env_name).values()))


def differences(spec: FunctionSpec, live: Mapping) -> tuple[str, ...]:
    """One line per difference between ``live`` (a ``GetFunctionConfiguration`` answer) and ``spec``:
    ``<what>: <live> on the function, <wanted> in stageflow.toml``. Plain variables are compared by
    name and value; a variable nobody configured is named without its value (it may be a secret)."""
    out: list[str] = []
    scalars = (
        ("handler", live.get("Handler"), spec.handler),
        ("runtime", live.get("Runtime"), spec.runtime),
        ("architectures", list(live.get("Architectures") or ["x86_64"]), [spec.architecture]),
        ("memory_mb", live.get("MemorySize"), spec.memory_mb),
        ("timeout_s", live.get("Timeout"), spec.timeout_s),
    )
    for label, have, want in scalars:
        if have != want:
            out.append(f"{label}: {_show(have)} on the function, {_show(want)} in stageflow.toml")
    variables = (live.get("Environment") or {}).get("Variables") or {}
    for name, want in spec.environment.items():
        if name not in variables:
            out.append(f"environment {name}: not set on the function, {want!r} in stageflow.toml")
        elif variables[name] != want:
            out.append(f"environment {name}: {variables[name]!r} on the function, {want!r} in stageflow.toml")
    for name in sorted(set(variables) - spec.managed_names):
        out.append(f"environment {name}: set on the function, not in stageflow.toml")
    return tuple(out)


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


# -- the deploy's secrets stage: the environment written, the configuration compared ---------------
@dataclass(frozen=True)
class SecretsResult:
    names: tuple[str, ...]  # the secrets written
    function: str | None
    kept: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()  # the plain variables of stageflow.toml written
    removed: tuple[str, ...] = ()  # variables left over on the function (in neither table)
    differs: tuple[str, ...] = ()  # the live function vs stageflow.toml, one line each

    @property
    def summary(self) -> str:
        if not self.names and not self.variables and not self.removed:
            what = "none configured"
        else:
            parts = []
            if self.names:
                parts.append(f"{len(self.names)} secrets ({', '.join(self.names)})")
            if self.variables:
                parts.append(f"{len(self.variables)} variables ({', '.join(self.variables)})")
            what = f"{' and '.join(parts) or 'nothing'} into {self.function}'s environment"
            if self.removed:
                what += f"; removed {', '.join(self.removed)}"
        if self.function is not None:
            what += (
                "; configuration as in stageflow.toml"
                if not self.differs
                else (f"; {len(self.differs)} differences from stageflow.toml")
            )
        return what

    def to_json(self) -> dict:
        return {
            "names": list(self.names),
            "kept": list(self.kept),
            "variables": list(self.variables),
            "removed": list(self.removed),
            "differs": list(self.differs),
        }


def write_environment(
    store: SecretStore,
    function: str,
    secrets: Mapping[str, Any],
    spec: FunctionSpec | None,
    *,
    say: Callable[[str], None] | None = None,
) -> SecretsResult:
    """Write the function's environment as stageflow.toml says: each secret's pinned reference
    (``secrets``: ``{NAME: reference}``, as ``STAGEFLOW_SECRET_<NAME>``; never a value) and ``spec``'s
    plain variables; variables in neither table nor the service module's are removed (a secret's value
    left under its own name by an older stageflow among them). Then compare the live ``$LATEST`` with
    ``spec`` and pass each difference to ``say``. Without ``spec`` only the references are merged."""
    references = {env_var(name): ref for name, ref in secrets.items()}
    if spec is None:
        if not secrets:
            return SecretsResult((), None)
        update = store.update_lambda_env(function, {}, plain=references)
        return SecretsResult(tuple(sorted(secrets)), function, tuple(getattr(update, "kept", ()) or ()))
    plain = {**spec.environment, **references}
    update = store.update_lambda_env(function, {}, plain=plain, only=spec.managed_names)
    differs = differences(spec, store.function_configuration(function))
    for line in differs:
        if say is not None:
            say(line)
    return SecretsResult(
        tuple(sorted(secrets)),
        function,
        tuple(getattr(update, "kept", ()) or ()),
        tuple(sorted(spec.environment)),
        tuple(getattr(update, "removed", ()) or ()),
        differs,
    )


def write_environments(
    store: SecretStore,
    targets: Sequence[FunctionTarget],
    secrets: Mapping[str, Any],
    specs: Mapping[str, FunctionSpec],
    *,
    say: Callable[[str], None] | None = None,
) -> SecretsResult:
    """:func:`write_environment` for every function of the release (``targets``, the ``functions``
    output) with its spec by key; one function (or outputs without keys) takes the only spec. With
    several, each difference line starts with the function's name. One result for the stage: the
    names of every function, the differences of all."""
    pairs = _pair(targets, specs)
    if len(pairs) == 1:
        ((target, spec),) = pairs
        return write_environment(store, target.function_name, secrets, spec, say=say)
    results = []
    for target, spec in pairs:
        prefix = f"{target.function_name}: "
        res = write_environment(store, target.function_name, secrets, spec, say=None)
        res = dataclasses.replace(res, differs=tuple(prefix + line for line in res.differs))
        for line in res.differs:
            if say is not None:
                say(line)
        results.append(res)
    return SecretsResult(
        names=tuple(sorted({n for r in results for n in r.names})),
        function=", ".join(t.function_name for t, _ in pairs),
        kept=tuple(sorted({n for r in results for n in r.kept})),
        variables=tuple(sorted({n for r in results for n in r.variables})),
        removed=tuple(sorted({n for r in results for n in r.removed})),
        differs=tuple(line for r in results for line in r.differs),
    )


def _pair(
    targets: Sequence[FunctionTarget], specs: Mapping[str, FunctionSpec]
) -> list[tuple[FunctionTarget, FunctionSpec | None]]:
    if len(targets) == 1 and len(specs) <= 1:
        return [(targets[0], next(iter(specs.values()), None))]
    missing = [t.key for t in targets if t.key not in specs]
    if missing:
        raise ConfigError(
            "stageflow.toml",
            "functions",
            f"Terraform's outputs name functions stageflow.toml does not have: {', '.join(missing)}",
            "plan and apply the environment from this stageflow.toml first",
        )
    return [(t, specs[t.key]) for t in targets]
