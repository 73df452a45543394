"""The outputs contract: what Terraform hands to the deploy step (``terraform output -json``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from stageflow.config.model import VARIABLE_NAME_RE
from stageflow.errors import EnvironmentFailure

REQUIRED = ("function_name", "alias_name", "alarm_names", "topic_arn", "history_table")


@dataclass(frozen=True)
class FunctionTarget:
    """One function of the service as deployed: its key in ``stageflow.toml`` (``[functions.KEY]``; the
    service's name for a one-function service), its Lambda name and the alias that takes its traffic."""

    key: str
    function_name: str
    alias_name: str


@dataclass(frozen=True)
class DeployOutputs:
    function_name: str  # the first function's (a one-function service: its only one)
    alias_name: str
    alarm_names: tuple[str, ...]
    topic_arn: str
    history_table: str
    source: str = "terraform"  # what built the resources (always Terraform's environment root)
    # every function of the release, in a stable order (the ``functions`` output; without it, the one
    # function named by function_name/alias_name, keyed by the function name)
    functions: tuple[FunctionTarget, ...] = ()
    # the HTTP front door's base URL (the optional ``url`` output: API Gateway's stage; in local mode the
    # composition root turns it into the emulator's loopback front door)
    url: str | None = None
    # variables Terraform wants in every function's environment besides stageflow.toml's (the optional
    # ``function_environment`` output: the staging root's AWS FIS extension variables); the deploy's
    # secrets stage writes them with the plain ones
    function_environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.functions:
            one = FunctionTarget(self.function_name, self.function_name, self.alias_name)
            object.__setattr__(self, "functions", (one,))

    def to_json(self) -> dict:
        return asdict(self)


def parse_outputs(
    raw: Mapping[str, Any], *, source: str = "terraform", where: str = "terraform output"
) -> DeployOutputs:
    """Validate ``terraform output -json`` (values wrapped as {"value": ...}) or a plain mapping."""

    def value(name: str):
        if name not in raw:
            raise EnvironmentFailure(
                f"{where}: missing output {name!r}",
                f"the environment root must output {', '.join(REQUIRED)}",
            )
        v = raw[name]
        return v["value"] if isinstance(v, Mapping) and "value" in v else v

    out = {}
    for name in REQUIRED:
        v = value(name)
        if name == "alarm_names":
            if not isinstance(v, list | tuple) or not all(isinstance(a, str) for a in v):
                raise EnvironmentFailure(f"{where}: output 'alarm_names' must be a list of strings")
            out[name] = tuple(v)
        else:
            if not isinstance(v, str) or not v:
                raise EnvironmentFailure(f"{where}: output {name!r} must be a non-empty string")
            out[name] = v
    url = value("url") if "url" in raw else None
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        raise EnvironmentFailure(f"{where}: output 'url' must be an http(s) URL")
    extra = value("function_environment") if "function_environment" in raw else None
    return DeployOutputs(
        **out,
        source=source,
        functions=_functions(raw.get("functions"), where),
        url=url or None,
        function_environment=_environment(extra, where),
    )


def _environment(raw: Any, where: str) -> dict[str, str]:
    """The optional ``function_environment`` output: variable name -> value, strings only."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and VARIABLE_NAME_RE.match(k) and isinstance(v, str) for k, v in raw.items()
    ):
        raise EnvironmentFailure(f"{where}: output 'function_environment' must map variable names to strings")
    return dict(sorted(raw.items()))


def _functions(raw: Any, where: str) -> tuple[FunctionTarget, ...]:
    """The optional ``functions`` output: ``{KEY: {"function_name": ..., "alias_name": ...}}`` (Terraform's
    ``{"value": ...}`` wrapper or plain; the cache writes a list of ``{"key", "function_name",
    "alias_name"}``). Absent: the one function of ``function_name``/``alias_name``."""
    if isinstance(raw, Mapping) and "value" in raw and not isinstance(raw.get("value"), str):
        raw = raw["value"]
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        raw = [{"key": k, **v} if isinstance(v, Mapping) else None for k, v in raw.items()]
    out: list[FunctionTarget] = []
    for item in raw if isinstance(raw, list | tuple) else [None]:
        names = (item or {}).get("key"), (item or {}).get("function_name"), (item or {}).get("alias_name")
        if not all(isinstance(n, str) and n for n in names):
            raise EnvironmentFailure(
                f"{where}: output 'functions' must map each function's key to function_name and alias_name"
            )
        out.append(FunctionTarget(*names))
    return tuple(out)
