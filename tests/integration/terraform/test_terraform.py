"""Real Terraform (1.0.3 and any newer one on PATH), offline, S3 backend + DynamoDB lock in the emulator."""

from __future__ import annotations

import json
import time

import pytest

from stageflow.errors import ExitCode
from stageflow.terraform.errors import PolicyError, StalePlanError, TerraformError

from .conftest import count_actions

pytestmark = [pytest.mark.terraform, pytest.mark.emulator]


def _objects(aws_clients, prefix):
    from stageflow.local.bootstrap import STATE_BUCKET

    resp = aws_clients.client("s3").list_objects_v2(Bucket=STATE_BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def _clients(emulator):
    from stageflow.aws import AwsClients, AwsTarget

    return AwsClients(AwsTarget("us-east-1", True, emulator.endpoint))


def test_workspaces_var_files_backend_outputs_and_noop(project, emulator, monkeypatch):
    f = project.factory()
    dev = f.terraform.plan("dev")
    assert dev.changes and dev.workspace == "dev" and dev.terraform_version == project.version
    assert dict(dev.summary.totals) == {"create": 5, "update": 0, "replace": 0, "delete": 0}
    assert f.terraform.apply(dev).applied
    prod = f.terraform.plan("prod")  # prod.tfvars: one more item, one more module member
    assert dict(prod.summary.totals) == {"create": 7, "update": 0, "replace": 0, "delete": 0}
    assert prod.policy.allowed  # creates only: fine even in a protected environment
    f.terraform.apply(prod)

    out = f.terraform.outputs("dev")
    assert out.function_name == "sample-api-dev" and out.alias_name == "live"
    assert out.alarm_names == ("sample-api-dev-errors", "sample-api-dev-p95")
    assert f.terraform.outputs("prod").history_table == "sample-api-prod-history"

    # remote state: one object per workspace in the emulator's bucket, none on local disk
    keys = _objects(_clients(emulator), "env:/")
    assert f"env:/dev/{project.service}/dev/terraform.tfstate" in keys
    assert f"env:/prod/{project.service}/prod/terraform.tfstate" in keys
    assert not list(project.tf_root.glob("terraform.tfstate*"))

    # a second plan has no changes: apply is skipped and the state does not move
    again = f.terraform.plan("dev")
    assert not again.changes and again.summary.headline() == "no changes"
    before = again.state
    skipped = f.terraform.apply(again)
    assert not skipped.applied and skipped.reason == "no changes"
    assert before.serial >= 1 and before.lineage
    # ... and the outputs come from the plan itself, equal to `terraform output`, with no process
    assert again.planned_outputs is not None and dev.planned_outputs is None  # a plan with changes: none
    calls, real_open = [], f.terraform.open
    monkeypatch.setattr(f.terraform, "open", lambda *a, **k: calls.append(a) or real_open(*a, **k))
    from_plan = f.terraform.outputs_after(again, skipped)
    assert calls == [] and from_plan == f.terraform.outputs("dev") and len(calls) == 1


def test_summary_counts_match_show_json_and_mask_secrets(project):
    f = project.factory()
    f.terraform.apply(f.terraform.plan("dev"))
    # delete b, create c; replace rotated; update sealed (sensitivity only); module: create z
    project.tfvars("dev", 'items = ["a", "c"]\ngroup_items = ["x", "z"]\ngeneration = "2"\nseal = true\n')
    result = f.terraform.plan("dev")
    shown = json.loads(project.raw("dev", "show", "-json", str(result.plan_file)).stdout)
    assert dict(result.summary.totals) == count_actions(shown)
    assert dict(result.summary.totals) == {"create": 2, "update": 1, "replace": 1, "delete": 1}
    assert dict(result.summary.by_module["module.group"]) == {
        "create": 1,
        "update": 0,
        "replace": 0,
        "delete": 0,
    }
    assert dict(result.summary.by_module["root"]) == {"create": 1, "update": 1, "replace": 1, "delete": 1}
    sealed = next(r for r in result.summary.resources if r.address == "null_resource.sealed")
    assert sealed.action == "update" and "(sensitive)" in sealed.changed["triggers"][1]
    rendered = result.summary.table() + json.dumps(result.to_json())
    assert "fixture-token-8c1f" not in rendered
    assert result.summary.outputs.get("token", ("", "(sensitive)"))[1] == "(sensitive)"

    applied = f.terraform.apply(result)  # exactly the saved plan: its variables are inside it
    assert applied.applied
    assert not f.terraform.plan("dev").changes


def test_protected_environment_refuses_destroy_and_changes_nothing(project):
    f = project.factory()
    f.terraform.apply(f.terraform.plan("prod"))
    project.tfvars("prod", 'items = ["a"]\ngroup_items = ["x", "y"]\ngeneration = "2"\n')
    result = f.terraform.plan("prod")
    assert not result.policy.allowed
    with pytest.raises(PolicyError) as exc:
        f.terraform.apply(result)
    assert exc.value.exit_code == ExitCode.USAGE
    assert "protected environment prod has 2 delete(s) and 1 replacement(s)" in exc.value.message

    cli = project.cli("apply", "prod")
    assert cli.returncode == 2, cli.stderr
    assert "stageflow: error: the plan for protected environment prod has 2 delete(s)" in cli.stderr
    assert "--allow-destroy" in cli.stderr

    allowed = f.terraform.plan("prod", allow_destroy=True)
    assert allowed.state == result.state  # the refusals changed nothing
    assert allowed.policy.allowed and f.terraform.apply(allowed).applied
    assert not f.terraform.plan("prod").changes


def test_stale_plan_is_refused(project):
    f = project.factory()
    f.terraform.apply(f.terraform.plan("dev"))
    project.tfvars("dev", 'items = ["a", "b", "c"]\n')
    first = f.terraform.plan("dev")
    project.tfvars("dev", 'items = ["a", "b", "d"]\n')
    f.terraform.apply(f.terraform.plan("dev"))  # someone else applied in between
    with pytest.raises(StalePlanError, match="moved since the plan"):
        f.terraform.apply(first)
    items = [
        r for r in project.raw("dev", "state", "list").stdout.split() if r.startswith("null_resource.item")
    ]
    assert items == ['null_resource.item["a"]', 'null_resource.item["b"]', 'null_resource.item["d"]']


def test_drift_detected(project):
    f = project.factory()
    f.terraform.apply(f.terraform.plan("dev"))
    assert not f.terraform.drift("dev").changes
    rm = project.raw("dev", "state", "rm", "null_resource.rotated")  # changed outside the pipeline
    assert rm.returncode == 0, rm.stderr
    result = f.terraform.drift("dev")
    assert result.changes and result.kind == "drift"
    assert dict(result.summary.totals) == {"create": 1, "update": 0, "replace": 0, "delete": 0}
    cli = project.cli("drift", "dev")
    assert cli.returncode == 1, cli.stderr
    assert "drift dev: 1 to create, 0 to update, 0 to replace, 0 to delete" in cli.stdout
    assert "null_resource.rotated (create)" in cli.stdout


def test_concurrent_applies_one_fails_fast_with_the_holder(project, emulator, monkeypatch):
    monkeypatch.setenv("STAGEFLOW_TERRAFORM_LOCK_TIMEOUT", "0s")  # the default: fail fast, naming the holder
    f = project.factory()
    f.terraform.apply(f.terraform.plan("slow"))  # init and workspace once, so both runs below only plan+apply
    project.tfvars("slow", 'sleep_seconds = 2\ngeneration = "2"\n')
    first = project.popen_cli("apply", "slow")
    ddb = _clients(emulator).client("dynamodb")
    from stageflow.local.bootstrap import LOCK_TABLE

    deadline = time.monotonic() + 30
    holder = None
    while time.monotonic() < deadline and holder is None:
        for item in ddb.scan(TableName=LOCK_TABLE).get("Items", []):
            info = json.loads(item.get("Info", {}).get("S", "{}") or "{}")
            if project.service in item["LockID"]["S"] and info.get("Operation") == "OperationTypeApply":
                holder = info
        time.sleep(0.1)
    assert holder, "the first apply never took the lock"
    t0 = time.monotonic()
    second = project.cli("apply", "slow")
    assert second.returncode == ExitCode.LOCKED, second.stderr
    assert time.monotonic() - t0 < 15
    assert (
        "is locked by" in second.stderr and holder["Who"] in second.stderr and holder["ID"] in second.stderr
    )
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    state = json.loads(project.raw("slow", "state", "pull").stdout)
    slow = [r for r in state["resources"] if r["name"] == "slow"]
    assert slow and slow[0]["instances"][0]["attributes"]["triggers"] == {"generation": "2"}
    assert not f.terraform.plan("slow").changes  # the state is intact and current


def test_hcl_syntax_error_is_exit_3_with_terraforms_message(project):
    f = project.factory()
    with pytest.raises(TerraformError) as exc:
        f.terraform.plan("broken")
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "Error: " in exc.value.message and "main.tf line" in exc.value.message


def test_hcl_syntax_error_cli(project):
    if project.version != "1.0.3":
        pytest.skip("the CLI mapping is version-independent: checked once, on 1.0.3")
    cli = project.cli("plan", "broken")
    assert cli.returncode == 3, cli.stderr
    last = cli.stderr.strip().splitlines()[-1]
    assert last.startswith("stageflow: error: terraform init -input=false failed (exit 1): Error: ")
    assert "main.tf line" in last


def test_non_local_mode_uses_the_environments_backend_hcl(project, emulator, monkeypatch):
    """Outside local mode the env's backend.hcl is passed as -backend-config=FILE (here: the emulator)."""
    from stageflow.local.bootstrap import bootstrap
    from stageflow.terraform.backend import local_backend_hcl
    from stageflow.terraform.version import TerraformVersion

    bootstrap(_clients(emulator), "us-east-1")
    text = local_backend_hcl(
        endpoint=emulator.endpoint,
        bucket="stageflow-local-tfstate",
        table="stageflow-local-tflock",
        key=f"{project.service}/aws/terraform.tfstate",
        region="us-east-1",
        version=TerraformVersion.parse(project.version),
    )
    (project.tf_root / "backend.hcl").write_text(text)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    f = project.factory(local=False)
    result = f.terraform.plan("dev")
    assert result.endpoint == "aws" and result.changes
    f.terraform.apply(result)
    keys = _objects(_clients(emulator), f"env:/dev/{project.service}/aws/")
    assert keys == [f"env:/dev/{project.service}/aws/terraform.tfstate"]
