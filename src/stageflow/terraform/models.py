"""What flows through the Terraform service: where an environment's Terraform runs and talks to, how
long it may run, and the results of a plan and an apply."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stageflow.errors import UsageError
from stageflow.terraform.client import StateVersion
from stageflow.terraform.runner import DEFAULT_GRACE_S
from stageflow.terraform.summary import PlanSummary, PolicyDecision

DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class TerraformEndpoint:
    """Where Terraform's backend and provider talk to (the ``terraform endpoint`` seam)."""

    name: str  # "aws" or "local": also names Terraform's working directory
    backend: dict | None = None  # None: the root's backend.hcl; else the generated S3 backend's settings
    provider_override: str | None = None  # HCL merged into roots that use the AWS provider
    env: dict | None = None  # extra child environment (dummy credentials, endpoint) or None
    prepare: Callable[[], object] | None = None  # before `init`: create what the backend needs
    # the target's own values for root variables (after stageflow.toml's, only where the root declares
    # them): the emulator's {"fis_extension_layer": False}, no Lambda layers there
    variables: dict | None = None


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """How long commands may run and how long to wait for a state lock (env-overridable)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    lock_timeout: str = "0s"  # fail fast on contention: exit 6 naming the holder
    grace_s: float = DEFAULT_GRACE_S

    @classmethod
    def from_env(cls, environ=None) -> Runtime:
        env = os.environ if environ is None else environ
        try:
            return cls(
                timeout_s=float(env.get("STAGEFLOW_TERRAFORM_TIMEOUT") or DEFAULT_TIMEOUT_S),
                lock_timeout=env.get("STAGEFLOW_TERRAFORM_LOCK_TIMEOUT") or "0s",
                grace_s=float(env.get("STAGEFLOW_TERRAFORM_GRACE") or DEFAULT_GRACE_S),
            )
        except ValueError:
            raise UsageError(
                "STAGEFLOW_TERRAFORM_TIMEOUT / STAGEFLOW_TERRAFORM_GRACE must be numbers of seconds"
            ) from None


@dataclass(frozen=True)
class EnvTarget:
    env_name: str
    root: Path
    work_dir: Path
    var_files: tuple[str, ...]
    backend_config: tuple[str, ...]
    workspace: str
    protected: bool
    endpoint: str  # the terraform endpoint's name: "aws" (the root's backend.hcl) or "local"


@dataclass(frozen=True)
class PlanResult:
    env_name: str
    root: Path
    plan_file: Path
    changes: bool
    summary: PlanSummary
    policy: PolicyDecision
    state: StateVersion
    plan_sha256: str
    terraform_version: str
    workspace: str
    endpoint: str  # "aws" or "local": where the plan's backend and provider pointed
    kind: str = "plan"  # "plan" or "drift"
    # The root's output values (from the saved plan's state), kept only for a plan without changes:
    # then they are exactly what ``terraform output -json`` would say, without its 10 s of schemas.
    planned_outputs: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {
            "environment": self.env_name,
            "kind": self.kind,
            "root": str(self.root),
            "plan_file": str(self.plan_file),
            "plan_sha256": self.plan_sha256,
            "changes": self.changes,
            "summary": self.summary.to_json(),
            "policy": self.policy.to_json(),
            "state": self.state.to_json(),
            "terraform_version": self.terraform_version,
            "workspace": self.workspace,
            "endpoint": self.endpoint,
        }


@dataclass(frozen=True)
class ApplyResult:
    env_name: str
    applied: bool
    reason: str

    def to_json(self) -> dict:
        return {"environment": self.env_name, "applied": self.applied, "reason": self.reason}
