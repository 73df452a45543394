"""The digest of an environment's infrastructure inputs: what Terraform plans from, besides the state.

A release records it (``extra.release.infra_digest``) so that ``stageflow rollback ENV --infra`` can tell
whether the infrastructure it would restore differs from what is applied. The inputs are every file of
the environment root's directory and of the local modules it calls (``.tf``, ``.tfvars``, templates,
dashboards; Terraform's own working files and the local provider override left out), named relative to
the root, plus the generated variables file's text (:mod:`stageflow.terraform.variables`). Paths in the
variables are relative to the root, so the same commit checked out anywhere has the same digest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageflow.terraform.binary import config_files
from stageflow.terraform.local_provider import OVERRIDE_NAME
from stageflow.terraform.variables import VAR_FILE, root_variables, var_file_text

if TYPE_CHECKING:
    from stageflow.config import Config

_SKIP_NAMES = frozenset({OVERRIDE_NAME, ".terraform.lock.hcl", ".terraform.tfstate.lock.info"})


def input_files(root: Path) -> list[tuple[str, Path]]:
    """``(name relative to root, path)`` of every input file, sorted by name."""
    root = Path(root).resolve()
    dirs = {f.parent for f in config_files(root)} or {root}
    found: dict[str, Path] = {}
    for d in dirs:
        for f in d.rglob("*"):
            rel = f.relative_to(d).parts
            if not f.is_file() or f.name in _SKIP_NAMES or any(p.startswith(".terraform") for p in rel):
                continue
            if f.name.endswith((".tfstate", ".tfstate.backup", ".tfplan")):
                continue
            found[Path(os.path.relpath(f, root)).as_posix()] = f
    return sorted(found.items())


def inputs_digest(root: Path, values: Mapping[str, Any]) -> str:
    """SHA-256 of the root's input files and the generated variables file's text for ``values``."""
    h = hashlib.sha256()
    for name, path in input_files(root):
        data = path.read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode() + data)
    text = var_file_text(dict(values)) if values else ""
    h.update(f"{VAR_FILE}\0{len(text)}\0{text}".encode())
    return h.hexdigest()


def environment_digest(config: Config, env_name: str, root: Path | None = None) -> str:
    """The digest of ``env_name``'s inputs in ``config``'s checkout (its environment root by default)."""
    root = Path(root) if root is not None else config.root / config.env(env_name).terraform.root
    return inputs_digest(root, root_variables(config, env_name, root))
