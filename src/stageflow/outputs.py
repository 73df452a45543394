"""The outputs contract: what Terraform hands to the deploy step (``terraform output -json``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from stageflow.errors import EnvironmentFailure

REQUIRED = ("function_name", "alias_name", "alarm_names", "topic_arn", "history_table")


@dataclass(frozen=True)
class DeployOutputs:
    function_name: str
    alias_name: str
    alarm_names: tuple[str, ...]
    topic_arn: str
    history_table: str
    source: str = "terraform"  # what built the resources (always Terraform's environment root)

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
    return DeployOutputs(**out, source=source)
