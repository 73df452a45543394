"""Options → argv, built apart from running (terraform-exec's shape), one pure function per command.

Every builder takes the installed :class:`TerraformVersion`, so a flag that version lacks fails here
with a clear error, and the unit tests assert the exact argv for each version family without a
Terraform binary. ``-input=false`` and ``-no-color`` are always passed where the command takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from stageflow.terraform.version import TerraformVersion


@dataclass(frozen=True, kw_only=True)
class InitOptions:
    backend: bool = True
    backend_config: tuple[str, ...] = ()  # files (or key=value pairs), in order
    reconfigure: bool = True  # we always name the backend explicitly: never migrate state interactively
    upgrade: bool = False
    plugin_dir: str | None = None
    lock_timeout: str | None = None
    json: bool = False  # machine-readable init output (>= 1.9)


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    out: str | None = None
    var_files: tuple[str, ...] = ()
    vars: tuple[tuple[str, str], ...] = ()  # (name, value): prefer TF_VAR_* for secrets
    destroy: bool = False
    refresh: bool = True
    refresh_only: bool = False
    detailed_exitcode: bool = True  # 0 no changes, 1 error, 2 changes
    lock: bool = True
    lock_timeout: str | None = None
    parallelism: int | None = None
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ApplyOptions:
    plan_file: str  # apply exactly this saved plan; -var / -var-file are never passed with it
    lock: bool = True
    lock_timeout: str | None = None
    parallelism: int | None = None


@dataclass(frozen=True, kw_only=True)
class ShowOptions:
    plan_file: str | None = None  # None: the current state


@dataclass(frozen=True, kw_only=True)
class OutputOptions:
    name: str | None = None  # None: every output


@dataclass(frozen=True, kw_only=True)
class ValidateOptions:
    json: bool = True


@dataclass(frozen=True, kw_only=True)
class WorkspaceOptions:
    name: str
    lock_timeout: str | None = None  # `workspace new` takes the lock


def build_version_args(version: TerraformVersion | None = None) -> list[str]:
    return ["version", "-json"]


def build_init_args(opts: InitOptions, version: TerraformVersion) -> list[str]:
    argv = ["init", "-input=false", "-no-color"]
    if opts.json:
        version.require(version.init_json, "init -json", "1.9")
        argv.append("-json")
    if not opts.backend:
        argv.append("-backend=false")
    argv += [f"-backend-config={bc}" for bc in opts.backend_config]
    if opts.reconfigure and opts.backend:
        argv.append("-reconfigure")
    if opts.upgrade:
        argv.append("-upgrade")
    if opts.plugin_dir:
        argv.append(f"-plugin-dir={opts.plugin_dir}")
    if opts.lock_timeout:
        argv.append(f"-lock-timeout={opts.lock_timeout}")
    return argv


def build_plan_args(opts: PlanOptions, version: TerraformVersion) -> list[str]:
    argv = ["plan", "-input=false", "-no-color"]
    if opts.detailed_exitcode:
        argv.append("-detailed-exitcode")
    if opts.out:
        argv.append(f"-out={opts.out}")
    if opts.destroy:
        argv.append("-destroy")
    if opts.refresh_only:
        argv.append("-refresh-only")
    if not opts.refresh:
        argv.append("-refresh=false")
    if not opts.lock:
        argv.append("-lock=false")
    elif opts.lock_timeout:
        argv.append(f"-lock-timeout={opts.lock_timeout}")
    if opts.parallelism is not None:
        argv.append(f"-parallelism={opts.parallelism}")
    argv += [f"-target={t}" for t in opts.targets]
    argv += [f"-var-file={f}" for f in opts.var_files]
    argv += [f"-var={k}={v}" for k, v in opts.vars]
    return argv


def build_apply_args(opts: ApplyOptions, version: TerraformVersion) -> list[str]:
    # A saved plan carries its variables: passing -var/-var-file with it fails on 1.0.x.
    argv = ["apply", "-input=false", "-no-color"]
    if not opts.lock:
        argv.append("-lock=false")
    elif opts.lock_timeout:
        argv.append(f"-lock-timeout={opts.lock_timeout}")
    if opts.parallelism is not None:
        argv.append(f"-parallelism={opts.parallelism}")
    argv.append(opts.plan_file)
    return argv


def build_show_args(opts: ShowOptions, version: TerraformVersion) -> list[str]:
    argv = ["show", "-json", "-no-color"]
    if opts.plan_file:
        argv.append(opts.plan_file)
    return argv


def build_output_args(opts: OutputOptions, version: TerraformVersion) -> list[str]:
    argv = ["output", "-json", "-no-color"]
    if opts.name:
        argv.append(opts.name)
    return argv


def build_validate_args(opts: ValidateOptions, version: TerraformVersion) -> list[str]:
    return ["validate", "-json", "-no-color"] if opts.json else ["validate", "-no-color"]


def build_workspace_select_args(opts: WorkspaceOptions, version: TerraformVersion) -> list[str]:
    # No -or-create: 1.0 lacks it; the adapter selects, and creates on "doesn't exist".
    return ["workspace", "select", "-no-color", opts.name]


def build_workspace_new_args(opts: WorkspaceOptions, version: TerraformVersion) -> list[str]:
    argv = ["workspace", "new", "-no-color"]
    if opts.lock_timeout:
        argv.append(f"-lock-timeout={opts.lock_timeout}")
    argv.append(opts.name)
    return argv


def build_workspace_show_args(version: TerraformVersion | None = None) -> list[str]:
    return ["workspace", "show", "-no-color"]


def build_state_pull_args(version: TerraformVersion | None = None) -> list[str]:
    return ["state", "pull"]
