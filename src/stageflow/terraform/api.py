"""The Terraform service the deploy pipeline and the CLI call: plan, apply, outputs, drift.

:class:`TerraformService` is built once by the composition root with the configuration, the state
directory, the terraform endpoint (AWS or the emulator), the reporter and the process runner; its
methods take plain inputs (an environment's name, a reviewed plan).

One environment = one Terraform root (``environments.<env>.terraform`` in stageflow.toml) with its
var file, backend config and workspace. Terraform's working data (``TF_DATA_DIR``), the saved plan
and the generated local backend live under ``<state_dir>/terraform/<env>/<mode>-<root hash>/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageflow import process
from stageflow.errors import ConfigError, NotDeployed, UsageError
from stageflow.outputs import DeployOutputs, parse_outputs
from stageflow.redact import REDACTOR
from stageflow.terraform import binary as B
from stageflow.terraform.args import ApplyOptions, InitOptions, PlanOptions, build_init_args
from stageflow.terraform.backend import write_local_backend
from stageflow.terraform.client import Terraform, plan_state_version
from stageflow.terraform.env import build_env
from stageflow.terraform.errors import PolicyError, StalePlanError, TerraformError
from stageflow.terraform.models import (
    ApplyResult,
    EnvTarget,
    PlanResult,
    Runtime,
    TerraformEndpoint,
)
from stageflow.terraform.moves import moved_blocks, state_moves
from stageflow.terraform.runner import SubprocessRunner
from stageflow.terraform.summary import check_policy, summarize

if TYPE_CHECKING:
    from stageflow.config import Config
    from stageflow.report import Reporter

__all__ = [
    "ApplyResult",
    "EnvTarget",
    "PlanResult",
    "Runtime",
    "TerraformEndpoint",
    "TerraformService",
    "enforce_policy",
    "plan_file_outputs",
    "providers_available",
]
INIT_STAMP = "stageflow-init.sha256"
KEEP_PLANS = 5


# -- the service ------------------------------------------------------------------------------------
class TerraformService:
    """Terraform for the environments of one configuration.

    ``endpoint`` is asked on first use (the target is chosen lazily: building the service starts
    nothing); ``run`` is the process runner (:func:`stageflow.process.run`, a fake in tests)."""

    def __init__(
        self,
        *,
        config: Config,
        state_dir: Path,
        endpoint: Callable[[], TerraformEndpoint],
        reporter: Reporter,
        run: process.Runner = process.run,
        binary: Callable[[], str] = B.find_binary,
        environ: Mapping[str, str] | None = None,
    ):
        self.config = config
        self.state_dir = Path(state_dir)
        self.endpoint = endpoint
        self.reporter = reporter
        self.run = run
        self.binary = binary
        self.environ = environ

    # -- building the Terraform for an environment ----------------------------------------------------
    def resolve_target(self, env_name: str, *, root: str | Path | None = None) -> EnvTarget:
        cfg = self.config
        env = cfg.env(env_name)
        tfs = env.terraform
        key = f"environments.{env_name}.terraform"
        root_path = Path(root) if root is not None else cfg.root / tfs.root
        root_path = root_path.resolve()
        if not root_path.is_dir():
            raise ConfigError(str(cfg.path), f"{key}.root", f"Terraform root {root_path} does not exist")
        var_files: tuple[str, ...] = ()
        if tfs.var_file:
            vf = root_path / tfs.var_file
            if vf.is_file():
                var_files = (str(vf),)
            elif tfs.var_file != "terraform.tfvars":
                raise ConfigError(str(cfg.path), f"{key}.var_file", f"{vf} does not exist")
        endpoint = self.endpoint()
        backend: tuple[str, ...] = ()
        if endpoint.backend is None:  # the root's own backend.hcl (a generated one otherwise)
            bf = root_path / tfs.backend_config
            if not bf.is_file():
                raise ConfigError(
                    str(cfg.path),
                    f"{key}.backend_config",
                    f"{bf} does not exist",
                    "outside local mode each environment needs its backend.hcl (or use --local)",
                )
            backend = (str(bf),)
        digest = hashlib.sha256(str(root_path).encode()).hexdigest()[:10]
        work = self.state_dir / "terraform" / env_name / f"{endpoint.name}-{digest}"
        return EnvTarget(
            env_name=env_name,
            root=root_path,
            work_dir=work,
            var_files=var_files,
            backend_config=backend,
            workspace=tfs.workspace or "default",
            protected=env.protected,
            endpoint=endpoint.name,
        )

    def open(
        self, target: EnvTarget, *, extra_env: dict[str, str] | None = None, runtime: Runtime | None = None
    ) -> Terraform:
        runtime = runtime or Runtime.from_env(self.environ)
        tools = B.tools_dir(self.config.root, self.environ)
        target.work_dir.mkdir(parents=True, exist_ok=True)
        cli_config = B.ensure_cli_config(tools, self.state_dir)
        env = build_env(
            os.environ if self.environ is None else self.environ,
            cli_config=str(cli_config),
            data_dir=str(target.work_dir / ".terraform"),
            local_env=self.endpoint().env,
            extra=extra_env,
        )
        runner = SubprocessRunner(
            lambda line, _stream: self.reporter.child(line), grace_s=runtime.grace_s, run=self.run
        )
        return Terraform(
            binary=self.binary(),
            workdir=str(target.root),
            env=env,
            runner=runner,
            timeout=runtime.timeout_s,
            lock_timeout=runtime.lock_timeout,
        )

    def prepare(self, target: EnvTarget, tf: Terraform) -> None:
        """init with the environment's backend (skipped when nothing changed since the last init), then
        select (or create) the workspace."""
        backend = target.backend_config
        endpoint = self.endpoint()
        if endpoint.prepare is not None:
            endpoint.prepare()
        generated = endpoint.backend
        if generated is not None:
            path = write_local_backend(
                target.work_dir / "backend-local.hcl",
                endpoint=generated["endpoint"],
                bucket=generated["bucket"],
                table=generated["table"],
                key=f"{self.config.service.name}/{target.env_name}/terraform.tfstate",
                region=generated["region"],
                version=tf.version,
            )
            backend = (str(path),)
        opts = InitOptions(backend_config=backend, lock_timeout=None)
        fingerprint = _init_fingerprint(tf, target, build_init_args(opts, tf.version), backend)
        stamp = target.work_dir / ".terraform" / INIT_STAMP
        initialised = (
            stamp.is_file()
            and stamp.read_text() == fingerprint
            and (target.root / ".terraform.lock.hcl").is_file()
        )
        if not initialised:
            self.reporter.info("terraform", target.env_name, f"init (Terraform {tf.version}, {target.root})")
            try:
                tf.init(opts)
            except TerraformError as exc:
                mirror = B.mirror_dir(B.tools_dir(self.config.root, self.environ))
                ok, reason = B.providers_available(target.root, mirror)
                if not ok:
                    exc.hint = f"{reason}; offline, only mirrored providers can be installed"
                raise
            stamp.write_text(fingerprint)
        if tf.workspace_select_or_create(target.workspace):
            self.reporter.info("terraform", target.env_name, f"created workspace {target.workspace}")

    def provider_override(self, target: EnvTarget):
        """The terraform-endpoint seam: where the target needs it, every AWS provider endpoint of a root
        that uses the AWS provider goes to the target's endpoint (written for the run, removed after)."""
        override = self.endpoint().provider_override
        if override is None:
            return contextlib.nullcontext()
        from stageflow.terraform.local_provider import provider_override

        return provider_override(target.root, override)

    def service_var_file(self, target: EnvTarget) -> tuple[str, ...]:
        """The service's values from stageflow.toml (terraform/variables.py) and the target's own (the
        terraform-endpoint seam's ``variables``), written into the working directory and passed after
        the root's own var file, so they win over it; none when the root declares none of them."""
        from stageflow.terraform.variables import declared_variables, root_variables, write_var_file

        values = root_variables(self.config, target.env_name, target.root)
        own = self.endpoint().variables or {}
        if own:
            declared = declared_variables(target.root)
            values.update({k: v for k, v in own.items() if k in declared})
        if not values:
            return ()
        return (str(write_var_file(target.work_dir, values)),)

    def inputs_digest(self, env_name: str, *, root: str | Path | None = None) -> str:
        """The digest of the environment's infrastructure inputs (:mod:`stageflow.terraform.inputs`)."""
        from stageflow.terraform.inputs import environment_digest

        return environment_digest(self.config, env_name, None if root is None else Path(root))

    # -- plan, apply, outputs ----------------------------------------------------------------------------
    def plan(
        self,
        env_name: str,
        *,
        root: str | Path | None = None,
        allow_destroy: bool = False,
        extra_env: dict[str, str] | None = None,
        runtime: Runtime | None = None,
    ) -> PlanResult:
        """init, workspace, ``plan -out``, summary and policy decision. Changes nothing."""
        return self._plan(
            env_name,
            root=root,
            allow_destroy=allow_destroy,
            extra_env=extra_env,
            runtime=runtime,
            kind="plan",
        )

    def drift(
        self,
        env_name: str,
        *,
        root: str | Path | None = None,
        extra_env: dict[str, str] | None = None,
        runtime: Runtime | None = None,
    ) -> PlanResult:
        """A plan with -detailed-exitcode: ``changes`` means the environment drifted from its code."""
        return self._plan(
            env_name, root=root, allow_destroy=True, extra_env=extra_env, runtime=runtime, kind="drift"
        )

    def _plan(self, env_name, *, root, allow_destroy, extra_env, runtime, kind: str) -> PlanResult:
        target = self.resolve_target(env_name, root=root)
        tf = self.open(target, extra_env=extra_env, runtime=runtime)
        var_files = (*target.var_files, *self.service_var_file(target))
        with self.provider_override(target), moved_blocks(target.root, self.config, tf.version):
            self.prepare(target, tf)
            _redact_state_secrets(tf, self.config, env_name)
            for old, new in state_moves(tf, target.root, self.config):
                self.reporter.info("terraform", env_name, f"state: moved {old} to {new}")
            plan_file = _new_plan_file(target.work_dir, kind)
            self.reporter.info(
                "terraform",
                env_name,
                f"{kind} (workspace {target.workspace}, var files: {len(var_files)})",
            )
            try:
                changes = tf.plan(PlanOptions(out=str(plan_file), var_files=var_files))
                # `show -json` loads every provider schema (20 s for hashicorp/aws on a loaded 2-core
                # machine): only a plan with changes has anything to show. Exit 0 of -detailed-exitcode
                # means no resource and no output changes, so the summary is empty and the outputs are
                # the state's.
                summary = summarize(tf.show_plan(str(plan_file))) if changes else summarize({})
            except BaseException:
                plan_file.unlink(missing_ok=True)  # a failed plan leaves no file behind
                raise
        policy = check_policy(
            summary, env_name=env_name, protected=target.protected, allow_destroy=allow_destroy
        )
        state = plan_state_version(str(plan_file)) or tf.state_version()
        return PlanResult(
            env_name=env_name,
            root=target.root,
            plan_file=plan_file,
            changes=changes,
            summary=summary,
            policy=policy,
            state=state,
            plan_sha256=_sha256(plan_file),
            terraform_version=str(tf.version),
            workspace=target.workspace,
            endpoint=target.endpoint,
            kind=kind,
            planned_outputs=None if changes else plan_file_outputs(plan_file),
        )

    def apply(
        self,
        plan_result: PlanResult,
        *,
        extra_env: dict[str, str] | None = None,
        runtime: Runtime | None = None,
    ) -> ApplyResult:
        """Apply exactly the saved, reviewed plan; skip a plan without changes; refuse a stale one."""
        env_name = plan_result.env_name
        if not plan_result.changes:
            self.reporter.info("terraform", env_name, "no changes: apply skipped")
            return ApplyResult(env_name, False, "no changes")
        enforce_policy(plan_result)
        if plan_result.kind != "plan":
            raise UsageError("only a plan made by plan() can be applied")
        if not plan_result.plan_file.is_file() or _sha256(plan_result.plan_file) != plan_result.plan_sha256:
            raise StalePlanError(
                f"the saved plan {plan_result.plan_file} is missing or changed since it was reviewed",
                "plan again",
            )
        target = self.resolve_target(env_name, root=plan_result.root)
        tf = self.open(target, extra_env=extra_env, runtime=runtime)
        with self.provider_override(target), moved_blocks(target.root, self.config, tf.version):
            self.prepare(target, tf)
            self.reporter.info(
                "terraform",
                env_name,
                f"apply {plan_result.plan_file.name} ({plan_result.summary.headline()})",
            )
            try:
                # Terraform compares the plan's prior state (lineage, serial) with the current state
                # under the state lock, so the check cannot race with another apply; we only word the
                # refusal.
                tf.apply(ApplyOptions(plan_file=str(plan_result.plan_file)))
            except StalePlanError:
                lineage = plan_result.state.lineage
                raise StalePlanError(
                    f"the state of {env_name} moved since the plan (planned against serial "
                    f"{plan_result.state.serial}{', lineage ' + lineage[:8] if lineage else ''})",
                    "plan again and review; nothing was applied",
                ) from None
        return ApplyResult(env_name, True, plan_result.summary.headline())

    def raw_outputs(
        self, env_name: str, *, root: str | Path | None = None, runtime: Runtime | None = None
    ) -> dict[str, Any]:
        target = self.resolve_target(env_name, root=root)
        tf = self.open(target, runtime=runtime)
        with self.provider_override(target):
            self.prepare(target, tf)
            raw = tf.outputs()
        _masked_outputs(raw)  # registers sensitive values with the redactor
        return raw

    def outputs(
        self, env_name: str, *, root: str | Path | None = None, runtime: Runtime | None = None
    ) -> DeployOutputs:
        """The outputs contract from ``terraform output -json``, validated (names a missing output)."""
        raw = self.raw_outputs(env_name, root=root, runtime=runtime)
        if not raw:
            where = " on the local emulator" if self.endpoint().backend is not None else ""
            raise NotDeployed(
                f"{env_name} has not been deployed{where}: Terraform has no outputs for it",
                f"deploy it first: stageflow deploy {env_name}",
            )
        return parse_outputs(raw, source="terraform", where=f"terraform output ({env_name})")

    def outputs_after(
        self, plan_result: PlanResult, apply_result: ApplyResult, *, runtime: Runtime | None = None
    ) -> DeployOutputs:
        """The outputs contract after :meth:`apply`: from the saved plan when nothing was applied (a
        plan without changes carries the state's outputs; no ``init``, no ``output -json``), else from
        ``terraform output -json``."""
        raw = None if apply_result.applied else plan_result.planned_outputs
        if raw is None:
            return self.outputs(plan_result.env_name, root=plan_result.root, runtime=runtime)
        _masked_outputs(raw)  # registers sensitive values with the redactor
        return parse_outputs(raw, source="terraform", where=f"terraform plan ({plan_result.env_name})")


# -- pure helpers ------------------------------------------------------------------------------------
def _init_fingerprint(
    tf: Terraform, target: EnvTarget, init_args: list[str], backend_files: Sequence[str | Path]
) -> str:
    """What ``init`` depends on: binary, flags, CLI config, backend files (the generated local one
    included: a restarted emulator has another port, and the backend must follow it) and the
    configuration's files.
    The local provider override is left out: it configures the provider, which init does not read, and
    it exists only during a local plan or apply (outputs are read without it) — with it in, every
    local deploy ran init twice."""
    from stageflow.terraform.local_provider import OVERRIDE_NAME

    h = hashlib.sha256()
    h.update(f"{tf.binary}\0{tf.version}\0{init_args}\0{tf.env.get('TF_CLI_CONFIG_FILE')}\0".encode())
    files = [Path(p) for p in backend_files] + B.config_files(target.root)
    for f in files:
        if f.name == OVERRIDE_NAME and f.parent == target.root:
            continue
        h.update(str(f).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _new_plan_file(work_dir: Path, kind: str) -> Path:
    """A fresh file per plan (a reviewed plan is never overwritten by a later one); old ones pruned.
    Created empty with mode 0600 before Terraform writes it (Terraform truncates an existing file and
    keeps its mode), so a plan is never readable by others, whatever the umask."""
    old = sorted(work_dir.glob(f"{kind}-*.tfplan"))
    for stale in old[: max(0, len(old) - KEEP_PLANS + 1)]:
        stale.unlink(missing_ok=True)
    path = work_dir / f"{kind}-{time.time_ns()}.tfplan"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def enforce_policy(result: PlanResult) -> None:
    if not result.policy.allowed:
        raise PolicyError(
            result.policy.reason, "review the plan, then rerun with --allow-destroy; nothing was applied"
        )


def plan_file_outputs(plan_file: Path) -> dict[str, Any] | None:
    """The root outputs of the state a saved plan was made against (its ``tfstate`` entry, shaped as
    ``terraform output -json``: ``{name: {"value": ..., "type": ..., "sensitive": bool}}``), or None.
    For a plan without changes these are exactly the outputs after it."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(plan_file) as z:
            outs = json.loads(z.read("tfstate")).get("outputs")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if not isinstance(outs, dict) or not all(isinstance(v, dict) and "value" in v for v in outs.values()):
        return None
    return outs


def _redact_state_secrets(tf, config: Config, env_name: str) -> None:
    """Before a plan prints anything: register with the redactor every value the state holds under a
    secret's name in a function's environment. A value an older stageflow merged there is gone from the
    function but not from the state, and the refresh note ("changed outside of Terraform") prints it."""
    names = set(config.env(env_name).secrets) if env_name in config.environments else set()
    if not names:
        return
    for res in tf.state_pull().get("resources") or []:
        if res.get("type") != "aws_lambda_function":
            continue
        for inst in res.get("instances") or []:
            for env in (inst.get("attributes") or {}).get("environment") or []:
                for name, value in ((env or {}).get("variables") or {}).items():
                    if name in names and value:
                        REDACTOR.add(str(value))


def _masked_outputs(raw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, item in raw.items():
        value = item.get("value") if isinstance(item, dict) else item
        if isinstance(item, dict) and item.get("sensitive"):
            for leaf in _leaves(value):
                REDACTOR.add(leaf)
            value = "(sensitive)"
        out[name] = value
    return out


def _leaves(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)
    elif value is not None:
        yield str(value)


def providers_available(root: str | Path, *, mirror: Path | None = None) -> tuple[bool, str]:
    """Whether every provider the root needs is in the offline mirror (and if not, which are missing)."""
    return B.providers_available(Path(root), mirror)
