"""Emulator fidelity fixes: fields real AWS keeps and moto drops, so Terraform plans no perpetual diff.

Applied inside the emulator process (``stageflow.local.server``) before moto serves a request. Each
fix is the smallest change that makes moto answer as AWS does; none changes what production gets.

- Lambda ``DeadLetterConfig``: moto 5.2 ignores it on CreateFunction and UpdateFunctionConfiguration
  and never returns it, so the AWS provider saw ``dead_letter_config`` missing after every refresh and
  planned an in-place update of both functions on every plan (which in turn deferred the rollback
  role's policy document to apply time: a third "update"). AWS returns ``{"TargetArn": ...}``.
- Lambda ``TracingConfig`` and ``KMSKeyArn`` on UpdateFunctionConfiguration: moto keeps the create
  value and drops the update, so a changed X-Ray mode or key would be planned again forever.
"""

from __future__ import annotations

import functools
from typing import Any

_APPLIED = "_stageflow_fidelity"


def apply() -> list[str]:
    """Patch moto's Lambda model in this process; returns the names of the fixes applied. Idempotent.
    A moto without the expected model (a future rewrite) is left alone: the no-op plan test then says
    what regressed."""
    try:
        from moto.awslambda.models import LambdaFunction
    except ImportError:  # pragma: no cover - moto is a dependency
        return []
    if getattr(LambdaFunction, _APPLIED, False):
        return ["lambda-dead-letter-config", "lambda-update-tracing-kms"]
    needed = ("__init__", "get_configuration", "update_configuration")
    if not all(callable(getattr(LambdaFunction, n, None)) for n in needed):  # pragma: no cover
        return []

    init = LambdaFunction.__init__
    get_configuration = LambdaFunction.get_configuration
    update_configuration = LambdaFunction.update_configuration

    @functools.wraps(init)
    def __init__(self, account_id: str, spec: dict[str, Any], *args, **kwargs):
        init(self, account_id, spec, *args, **kwargs)
        self.dead_letter_config = _dead_letter(spec.get("DeadLetterConfig"))

    @functools.wraps(get_configuration)
    def get_config(self, *args, **kwargs) -> dict[str, Any]:
        config = get_configuration(self, *args, **kwargs)
        dlc = getattr(self, "dead_letter_config", None)
        if dlc:
            config["DeadLetterConfig"] = dict(dlc)
        return config

    @functools.wraps(update_configuration)
    def update_config(self, config_updates: dict[str, Any]) -> dict[str, Any]:
        if "DeadLetterConfig" in config_updates:
            self.dead_letter_config = _dead_letter(config_updates["DeadLetterConfig"])
        if isinstance(config_updates.get("TracingConfig"), dict):
            self.tracing_config = {"Mode": config_updates["TracingConfig"].get("Mode") or "PassThrough"}
        if "KMSKeyArn" in config_updates:
            self.kms_key_arn = config_updates["KMSKeyArn"] or None
        return update_configuration(self, config_updates)

    LambdaFunction.__init__ = __init__
    LambdaFunction.get_configuration = get_config
    LambdaFunction.update_configuration = update_config
    setattr(LambdaFunction, _APPLIED, True)
    return ["lambda-dead-letter-config", "lambda-update-tracing-kms"]


def _dead_letter(value: Any) -> dict[str, str] | None:
    """AWS keeps ``{"TargetArn": arn}``; an empty TargetArn removes the config."""
    if isinstance(value, dict) and value.get("TargetArn"):
        return {"TargetArn": str(value["TargetArn"])}
    return None
