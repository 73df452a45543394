"""Exact argv for every command and option, on both version families (no Terraform needed)."""

from __future__ import annotations

import pytest

from stageflow.terraform import args as A
from stageflow.terraform.version import TerraformVersion, UnsupportedFlagError

V10 = TerraformVersion(1, 0, 3)
V111 = TerraformVersion(1, 11, 4)
BOTH = pytest.mark.parametrize("version", [V10, V111], ids=["1.0.x", "1.11.x"])


@BOTH
def test_version(version):
    assert A.build_version_args(version) == ["version", "-json"]


@BOTH
def test_init_defaults(version):
    assert A.build_init_args(A.InitOptions(), version) == [
        "init",
        "-input=false",
        "-no-color",
        "-reconfigure",
    ]


@BOTH
def test_init_every_option(version):
    opts = A.InitOptions(
        backend_config=("/p/backend.hcl", "key=a/b.tfstate"),
        reconfigure=True,
        upgrade=True,
        plugin_dir="/mirror",
        lock_timeout="5s",
    )
    assert A.build_init_args(opts, version) == [
        "init",
        "-input=false",
        "-no-color",
        "-backend-config=/p/backend.hcl",
        "-backend-config=key=a/b.tfstate",
        "-reconfigure",
        "-upgrade",
        "-plugin-dir=/mirror",
        "-lock-timeout=5s",
    ]


@BOTH
def test_init_without_backend_never_reconfigures(version):
    opts = A.InitOptions(backend=False, reconfigure=True)
    assert A.build_init_args(opts, version) == ["init", "-input=false", "-no-color", "-backend=false"]


def test_init_json_is_gated_by_version():
    with pytest.raises(UnsupportedFlagError, match=r"1\.0\.3 does not support init -json"):
        A.build_init_args(A.InitOptions(json=True), V10)
    assert A.build_init_args(A.InitOptions(json=True), V111)[:4] == [
        "init",
        "-input=false",
        "-no-color",
        "-json",
    ]


@BOTH
def test_plan_defaults(version):
    assert A.build_plan_args(A.PlanOptions(), version) == [
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
    ]


@BOTH
def test_plan_every_option(version):
    opts = A.PlanOptions(
        out="/w/plan.tfplan",
        var_files=("/r/dev.tfvars", "/r/extra.tfvars"),
        vars=(("image", "sha256:ab"),),
        destroy=True,
        refresh=False,
        refresh_only=True,
        detailed_exitcode=False,
        lock_timeout="2s",
        parallelism=4,
        targets=("null_resource.a",),
    )
    assert A.build_plan_args(opts, version) == [
        "plan",
        "-input=false",
        "-no-color",
        "-out=/w/plan.tfplan",
        "-destroy",
        "-refresh-only",
        "-refresh=false",
        "-lock-timeout=2s",
        "-parallelism=4",
        "-target=null_resource.a",
        "-var-file=/r/dev.tfvars",
        "-var-file=/r/extra.tfvars",
        "-var=image=sha256:ab",
    ]


@BOTH
def test_plan_without_lock_drops_the_lock_timeout(version):
    argv = A.build_plan_args(A.PlanOptions(lock=False, lock_timeout="2s"), version)
    assert argv == ["plan", "-input=false", "-no-color", "-detailed-exitcode", "-lock=false"]


@BOTH
def test_apply_saved_plan_never_passes_variables(version):
    argv = A.build_apply_args(A.ApplyOptions(plan_file="/w/plan.tfplan", lock_timeout="0s"), version)
    assert argv == ["apply", "-input=false", "-no-color", "-lock-timeout=0s", "/w/plan.tfplan"]
    assert not any(a.startswith(("-var", "-auto-approve")) for a in argv)


@BOTH
def test_apply_every_option(version):
    argv = A.build_apply_args(A.ApplyOptions(plan_file="p", lock=False, parallelism=2), version)
    assert argv == ["apply", "-input=false", "-no-color", "-lock=false", "-parallelism=2", "p"]


def test_apply_requires_a_plan_file():
    with pytest.raises(TypeError):
        A.ApplyOptions()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        A.ApplyOptions("positional")  # type: ignore[misc] - keyword-only fields


@BOTH
def test_show(version):
    assert A.build_show_args(A.ShowOptions(), version) == ["show", "-json", "-no-color"]
    assert A.build_show_args(A.ShowOptions(plan_file="/w/p"), version) == [
        "show",
        "-json",
        "-no-color",
        "/w/p",
    ]


@BOTH
def test_output(version):
    assert A.build_output_args(A.OutputOptions(), version) == ["output", "-json", "-no-color"]
    assert A.build_output_args(A.OutputOptions(name="x"), version) == ["output", "-json", "-no-color", "x"]


@BOTH
def test_validate(version):
    assert A.build_validate_args(A.ValidateOptions(), version) == ["validate", "-json", "-no-color"]
    assert A.build_validate_args(A.ValidateOptions(json=False), version) == ["validate", "-no-color"]


@BOTH
def test_workspaces(version):
    opts = A.WorkspaceOptions(name="prod", lock_timeout="0s")
    # No -or-create, even where Terraform has it: one code path for 1.0 and later.
    assert A.build_workspace_select_args(opts, version) == ["workspace", "select", "-no-color", "prod"]
    assert A.build_workspace_new_args(opts, version) == [
        "workspace",
        "new",
        "-no-color",
        "-lock-timeout=0s",
        "prod",
    ]
    assert A.build_workspace_new_args(A.WorkspaceOptions(name="x"), version) == [
        "workspace",
        "new",
        "-no-color",
        "x",
    ]
    assert A.build_workspace_show_args(version) == ["workspace", "show", "-no-color"]


@BOTH
def test_state_pull(version):
    assert A.build_state_pull_args(version) == ["state", "pull"]


def test_option_dataclasses_are_frozen():
    opts = A.PlanOptions()
    with pytest.raises(AttributeError):
        opts.out = "x"  # type: ignore[misc]


def test_version_parsing_and_features():
    assert TerraformVersion.from_version_json('{"terraform_version": "1.0.3"}') == V10
    assert TerraformVersion.parse("v1.11.4") == V111
    assert TerraformVersion.parse("1.6.0-beta1").s3_endpoints_block
    assert not V10.s3_endpoints_block and V111.s3_endpoints_block
    assert not V10.workspace_select_or_create and V111.workspace_select_or_create
    with pytest.raises(Exception, match="gave no version"):
        TerraformVersion.from_version_json("Terraform v1.0.3")
    with pytest.raises(Exception, match="too old") as exc:
        TerraformVersion(0, 14, 11).check_supported()
    assert exc.value.exit_code == 3
