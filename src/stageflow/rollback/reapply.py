"""One commit's infrastructure applied again, for ``rollback --infra`` (:mod:`.infra`): its tree
checked out into a temporary directory through ``git archive`` (:func:`stageflow.git.export_tree`; the
work tree is not touched), its ``stageflow.toml`` read, its variables generated, its environment root
planned → the plan policy (protected environments refuse destructive changes without
``--allow-destroy``) → that plan applied: the deploy's own infrastructure stage
(:func:`stageflow.pipeline.stage_infrastructure`) on the old checkout.

Nothing is built. The roots need the package paths to exist: Terraform ignores the service function's
code once it exists (lambda.tf ``ignore_changes``: the published versions are the release's code), so
a stand-in zip (:func:`stageflow.packaging.lambda_zip.placeholder`) sits at the service zip's path; the
rollback function's code is Terraform's, so its zip is the one this stageflow builds (reproducible from
stageflow's own modules, as every deploy writes it)."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageflow import git
from stageflow.config import load
from stageflow.rollback.infra import Reapplied

if TYPE_CHECKING:
    from stageflow.config import Config


@dataclass(frozen=True)
class Reapply:
    """What re-applying needs, from the composition root: the project's checkout, a place for the old
    tree, Terraform and the secret store for the old commit's configuration, the outputs store."""

    project_root: Path
    config_name: str  # the configuration file's name in the project root
    work: Path
    terraform_for: Callable[[Config], Any]  # -> TerraformService
    secrets_for: Callable[[Config], Any]  # -> SecretStore
    outputs: Any  # OutputsStore
    env_name: str
    allow_destroy: bool = False
    # the environment is protected in the working tree's configuration: the old commit's plan is held to
    # the protected policy even when that commit did not yet mark it (protection is never rolled back)
    protected: bool = False

    def __call__(self, commit: str) -> Reapplied:
        from stageflow.pipeline import stage_infrastructure

        tree = self.work / f"{self.env_name}-{commit[:12]}-{secrets.token_hex(3)}"
        terraform = None
        try:
            git.export_tree(self.project_root, commit, tree)
            cfg = protect(load(tree / self.config_name), self.env_name, self.protected)
            env = cfg.env(self.env_name)
            stand_in_packages(cfg, self.env_name)
            terraform = self.terraform_for(cfg)
            infra = stage_infrastructure(
                env, terraform, self.outputs, self.secrets_for(cfg), allow_destroy=self.allow_destroy
            )
            return Reapplied(
                infra.applied, infra.headline if infra.applied else "no changes", infra.plan_sha256
            )
        finally:
            if terraform is not None:  # Terraform's working data of the temporary root
                _drop_work_dirs(terraform, self.env_name, tree)
            shutil.rmtree(tree, ignore_errors=True)


def protect(cfg: Config, env_name: str, protected: bool) -> Config:
    """``cfg`` with ``env_name`` protected when ``protected`` (an environment the commit did not have:
    exit 2, :class:`~stageflow.errors.UnknownEnvironmentError`)."""
    env = cfg.env(env_name)
    if not protected or env.protected:
        return cfg
    env = dataclasses.replace(env, protected=True)
    return dataclasses.replace(cfg, environments={**cfg.environments, env_name: env})


def stand_in_packages(cfg: Config, env_name: str) -> None:
    """The zips the environment root names, without building the service (see the module docstring)."""
    from stageflow.function_config import wanted
    from stageflow.packaging.lambda_zip import placeholder, rollback_package
    from stageflow.terraform.variables import package_paths

    service_zip, rollback_zip = package_paths(cfg)
    service_zip.parent.mkdir(parents=True, exist_ok=True)
    service_zip.write_bytes(placeholder(wanted(cfg, env_name).handler).data)
    rollback_zip.write_bytes(rollback_package().data)


def _drop_work_dirs(terraform, env_name: str, tree: Path) -> None:
    """The temporary root's Terraform working directory (keyed by the root's path: used once)."""
    try:
        target = terraform.resolve_target(env_name)
    except Exception:  # noqa: BLE001 - cleanup only
        return
    if tree.resolve() in target.root.parents:
        shutil.rmtree(target.work_dir, ignore_errors=True)
