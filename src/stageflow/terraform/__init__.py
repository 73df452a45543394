"""Terraform orchestration: our own subprocess adapter, per-environment backends, plan summaries,
the protected-environment policy, saved-plan applies and the outputs contract.

- :mod:`.args`: option dataclasses and pure ``build_<cmd>_args`` argv builders
- :mod:`.runner`: Terraform through :func:`stageflow.process.run`, its timeout as TerraformTimeout
- :mod:`.client`: :class:`~stageflow.terraform.client.Terraform`, a working directory driven through both
- :mod:`.api`: what the pipeline calls: ``plan``, ``apply``, ``outputs``, ``drift``, ``providers_available``
"""

from stageflow.terraform.errors import (
    PolicyError,
    StalePlanError,
    StateLockedError,
    TerraformError,
    TerraformTimeout,
)

__all__ = ["PolicyError", "StalePlanError", "StateLockedError", "TerraformError", "TerraformTimeout"]
