"""Read the Terraform configuration with the `hcl2` parser, whichever distribution provides it.

Two PyPI distributions install the import name ``hcl2``: python-hcl2 and checkov's bc-python-hcl2. They
shape values differently (bc wraps every attribute in a one-element list; python-hcl2 8 keeps string
quotes), so tests read attributes only through :func:`attr` and blocks through :func:`blocks`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infrastructure"
MODULES = INFRA / "modules"
ENVIRONMENTS = ("dev", "staging", "prod")

_MISSING = object()


def _probe() -> tuple[bool, bool]:
    value = hcl2.loads('a = "x"\n')["a"]
    wrapped = isinstance(value, list)
    inner = value[0] if wrapped else value
    return wrapped, inner == '"x"'


WRAPPED, QUOTED = _probe()


def clean(value: Any) -> Any:
    """Strip parser artefacts: quote marks (python-hcl2 8) and ``__meta__`` keys."""
    if isinstance(value, str):
        if QUOTED and len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


def attr(block: dict, name: str, default: Any = _MISSING) -> Any:
    """An attribute's value, unwrapped and cleaned."""
    if name not in block:
        if default is _MISSING:
            raise KeyError(f"attribute {name!r} not set (keys: {sorted(block)})")
        return default
    value = block[name]
    if WRAPPED and isinstance(value, list) and len(value) == 1:
        value = value[0]
    return clean(value)


def blocks(block: dict, name: str) -> list[dict]:
    """The nested blocks called ``name`` (each a dict), in source order."""
    found = block.get(name, [])
    if isinstance(found, dict):
        found = [found]
    return [b for b in found if isinstance(b, dict)]


def block(parent: dict, name: str) -> dict:
    found = blocks(parent, name)
    assert len(found) == 1, f"expected one {name!r} block, found {len(found)}"
    return found[0]


@dataclass(frozen=True)
class Config:
    """All .tf files of one directory, merged."""

    path: Path
    resources: dict[tuple[str, str], dict]
    data: dict[tuple[str, str], dict]
    modules: dict[str, dict]
    outputs: dict[str, dict]
    variables: dict[str, dict]
    locals: dict[str, Any]
    terraform: list[dict]

    def resource(self, rtype: str, name: str) -> dict:
        try:
            return self.resources[(rtype, name)]
        except KeyError:
            raise AssertionError(f"{self.path}: no resource {rtype}.{name}") from None

    def of_type(self, rtype: str) -> dict[str, dict]:
        return {n: body for (t, n), body in self.resources.items() if t == rtype}

    def policy_document(self, name: str) -> dict:
        try:
            return self.data[("aws_iam_policy_document", name)]
        except KeyError:
            raise AssertionError(f"{self.path}: no aws_iam_policy_document.{name}") from None


def _labelled(entries: list[dict]) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for entry in entries:
        for rtype, named in entry.items():
            if str(rtype).startswith("__"):
                continue
            for name, body in named.items():
                if not str(name).startswith("__"):
                    out[(clean(rtype), clean(name))] = body
    return out


@cache
def load_dir(path: Path) -> Config:
    resources: dict = {}
    data: dict = {}
    modules: dict = {}
    outputs: dict = {}
    variables: dict = {}
    locals_: dict = {}
    terraform: list = []
    files = sorted(path.glob("*.tf"))
    assert files, f"no .tf files in {path}"
    for tf in files:
        with tf.open(encoding="utf-8") as fh:
            parsed = hcl2.load(fh)
        resources.update(_labelled(parsed.get("resource", [])))
        data.update(_labelled(parsed.get("data", [])))
        for kind, target in (("module", modules), ("output", outputs), ("variable", variables)):
            for entry in parsed.get(kind, []):
                for name, body in entry.items():
                    if not str(name).startswith("__"):
                        target[clean(name)] = body
        for entry in parsed.get("locals", []):
            for name in entry:
                if not str(name).startswith("__"):
                    locals_[clean(name)] = attr(entry, name)
        terraform.extend(parsed.get("terraform", []))
    return Config(path, resources, data, modules, outputs, variables, locals_, terraform)


def load_vars(path: Path) -> dict[str, Any]:
    """A .tfvars or backend .hcl file as a plain mapping."""
    with path.open(encoding="utf-8") as fh:
        parsed = hcl2.load(fh)
    return {clean(k): attr(parsed, k) for k in parsed if not str(k).startswith("__")}


def as_list(value: Any) -> list:
    """A list attribute (``["a", "b"]``), whichever way the parser nested it."""
    if WRAPPED and isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    return value if isinstance(value, list) else [value]


def statements(document: dict) -> list[dict]:
    """The statements of an aws_iam_policy_document data source as IAM-shaped dicts."""
    out = []
    for st in blocks(document, "statement"):
        out.append(
            {
                "Sid": attr(st, "sid", ""),
                "Effect": attr(st, "effect", "Allow"),
                "Action": as_list(attr(st, "actions", [])),
                "Resource": as_list(attr(st, "resources", [])),
                "Condition": blocks(st, "condition"),
            }
        )
    return out


def jsonencoded(expr: str) -> Any:
    """Evaluate a literal ``${jsonencode(...)}`` as the parser rendered it."""
    import ast

    text = expr.strip()
    assert text.startswith("${jsonencode(") and text.endswith(")}"), text
    body = text[len("${jsonencode(") : -2]
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return ast.literal_eval(body)  # bc-python-hcl2 renders objects as Python literals
    except (ValueError, SyntaxError):
        return attr(hcl2.loads(f"x = {body}\n"), "x")  # python-hcl2 8 keeps HCL syntax
