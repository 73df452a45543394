"""The plan summary and the protected-environment policy, from ``terraform show -json PLAN``.

Counts per action (create, update, replace, delete) overall, per resource type and per module; each
changed resource with its changed top-level attributes, sensitive values masked. Pure functions:
the tests check them against Terraform's own ``show -json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("create", "update", "replace", "delete")
SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
ROOT_MODULE = "root"
MAX_VALUE_CHARS = 60


def action_of(actions: list[str] | tuple[str, ...]) -> str:
    """Terraform's action list as one word: create, update, replace, delete, read or no-op."""
    acts = tuple(actions)
    if acts in (("delete", "create"), ("create", "delete")):
        return "replace"
    if len(acts) == 1:
        return acts[0]
    return "-".join(acts)


def _counts() -> dict[str, int]:
    return dict.fromkeys(ACTIONS, 0)


@dataclass(frozen=True)
class ResourceChange:
    address: str
    module: str
    type: str
    action: str
    changed: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # attr -> (before, after)

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "module": self.module,
            "type": self.type,
            "action": self.action,
            "changed": {k: {"before": b, "after": a} for k, (b, a) in self.changed.items()},
        }


@dataclass(frozen=True)
class PlanSummary:
    totals: Mapping[str, int]
    by_type: Mapping[str, Mapping[str, int]]
    by_module: Mapping[str, Mapping[str, int]]
    resources: tuple[ResourceChange, ...]
    outputs: Mapping[str, tuple[str, str]]  # name -> (action, rendered value after, masked)

    @property
    def changes(self) -> bool:
        return any(self.totals.values()) or bool(self.outputs)

    @property
    def destructive(self) -> int:
        return self.totals["delete"] + self.totals["replace"]

    def headline(self) -> str:
        if not self.changes:
            return "no changes"
        parts = [f"{self.totals[a]} to {a}" for a in ACTIONS]
        if not any(self.totals.values()):
            parts = ["outputs only"]
        return ", ".join(parts)

    def to_json(self) -> dict:
        return {
            "totals": dict(self.totals),
            "by_type": {k: dict(v) for k, v in self.by_type.items()},
            "by_module": {k: dict(v) for k, v in self.by_module.items()},
            "resources": [r.to_json() for r in self.resources],
            "outputs": {k: {"action": a, "after": v} for k, (a, v) in self.outputs.items()},
        }

    def table(self) -> str:
        lines = [self.headline()]
        if not any(self.totals.values()):
            lines += [f"  output {k}: {a} → {v}" for k, (a, v) in self.outputs.items()]
            return "\n".join(lines)
        width = max(len(k) for k in (*self.by_type, *self.by_module, "RESOURCE TYPE", "MODULE"))
        head = "  ".join(f"{a.upper():>7}" for a in ACTIONS)
        for title, rows in (("RESOURCE TYPE", self.by_type), ("MODULE", self.by_module)):
            lines.append(f"  {title:<{width}}  {head}")
            for name, counts in rows.items():
                lines.append(f"  {name:<{width}}  " + "  ".join(f"{counts[a]:>7}" for a in ACTIONS))
        symbol = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}
        for r in self.resources:
            attrs = "; ".join(f"{k}: {b} → {a}" for k, (b, a) in r.changed.items())
            lines.append(
                f"  {symbol.get(r.action, '?'):>3} {r.address} ({r.action})" + (f"  {attrs}" if attrs else "")
            )
        lines += [f"  output {k}: {a} → {v}" for k, (a, v) in self.outputs.items()]
        return "\n".join(lines)


def _render(value: Any, sensitive: Any, unknown: Any = False) -> str:
    if sensitive is True or (sensitive and not isinstance(sensitive, dict | list)):
        return SENSITIVE
    if unknown is True:
        return UNKNOWN
    if _any_true(sensitive):
        # a structure with some sensitive leaves: show its shape with those leaves masked
        value = _mask(value, sensitive)
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _any_true(marks: Any) -> bool:
    if marks is True:
        return True
    if isinstance(marks, dict):
        return any(_any_true(v) for v in marks.values())
    if isinstance(marks, list):
        return any(_any_true(v) for v in marks)
    return False


def _mask(value: Any, marks: Any) -> Any:
    if marks is True:
        return SENSITIVE
    if isinstance(value, dict) and isinstance(marks, dict):
        return {k: _mask(v, marks.get(k, False)) for k, v in value.items()}
    if isinstance(value, list) and isinstance(marks, list):
        return [_mask(v, marks[i] if i < len(marks) else False) for i, v in enumerate(value)]
    return value


def _union(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _union(a.get(k, False), b.get(k, False)) for k in set(a) | set(b)}
    if isinstance(a, list) and isinstance(b, list):
        n = max(len(a), len(b))
        return [_union(a[i] if i < len(a) else False, b[i] if i < len(b) else False) for i in range(n)]
    return a if isinstance(a, dict | list) else b


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else (d if isinstance(d, bool) else None)


def _changed_attributes(change: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    before = change.get("before") or {}
    after = change.get("after") or {}
    bs, as_, au = (
        change.get("before_sensitive") or {},
        change.get("after_sensitive") or {},
        change.get("after_unknown") or {},
    )
    if not isinstance(before, dict) or not isinstance(after, dict):
        return {}
    out: dict[str, tuple[str, str]] = {}
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        b_s, a_s, a_u = _get(bs, key), _get(as_, key), _get(au, key)
        if b == a and not _any_true(a_u) and bool(_any_true(b_s)) == bool(_any_true(a_s)):
            continue
        if key == "id" and a is None and a_u is True and b is None:
            continue
        # Sensitive on either side masks both: a value sealed now was the same secret before.
        marks = _union(b_s, a_s)
        out[key] = (_render(b, marks), _render(a, marks, a_u))
    return out


def summarize(plan_json: Mapping[str, Any]) -> PlanSummary:
    """Build the summary from ``terraform show -json PLANFILE`` (format 0.1 and later)."""
    totals = _counts()
    by_type: dict[str, dict[str, int]] = {}
    by_module: dict[str, dict[str, int]] = {}
    resources: list[ResourceChange] = []
    for rc in plan_json.get("resource_changes") or []:
        if rc.get("mode", "managed") != "managed":
            continue
        change = rc.get("change") or {}
        action = action_of(change.get("actions") or ["no-op"])
        if action not in ACTIONS:
            continue
        module = rc.get("module_address") or ROOT_MODULE
        rtype = rc.get("type", "?")
        totals[action] += 1
        by_type.setdefault(rtype, _counts())[action] += 1
        by_module.setdefault(module, _counts())[action] += 1
        changed = _changed_attributes(change) if action in ("update", "replace") else {}
        resources.append(ResourceChange(rc.get("address", "?"), module, rtype, action, changed))
    outputs: dict[str, tuple[str, str]] = {}
    for name, oc in (plan_json.get("output_changes") or {}).items():
        action = action_of(oc.get("actions") or ["no-op"])
        if action not in ACTIONS:
            continue
        sensitive = oc.get("after_sensitive") or oc.get("before_sensitive")
        after = _render(oc.get("after"), sensitive, oc.get("after_unknown"))
        outputs[name] = (action, SENSITIVE if _any_true(sensitive) else after)
    return PlanSummary(
        totals=totals,
        by_type=dict(sorted(by_type.items())),
        by_module=dict(sorted(by_module.items(), key=lambda kv: (kv[0] != ROOT_MODULE, kv[0]))),
        resources=tuple(sorted(resources, key=lambda r: r.address)),
        outputs=outputs,
    )


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    reason: str

    def to_json(self) -> dict:
        return {"allowed": self.allowed, "reason": self.reason}


def check_policy(
    summary: PlanSummary, *, env_name: str, protected: bool, allow_destroy: bool
) -> PolicyDecision:
    """Deletes or replacements in a protected environment need an explicit --allow-destroy."""
    n_del, n_rep = summary.totals["delete"], summary.totals["replace"]
    if not (n_del or n_rep):
        return PolicyDecision(True, "no deletes or replacements")
    what = f"{n_del} delete(s) and {n_rep} replacement(s)"
    if not protected:
        return PolicyDecision(True, f"{what} allowed: {env_name} is not protected")
    if allow_destroy:
        return PolicyDecision(True, f"{what} allowed by --allow-destroy in protected {env_name}")
    return PolicyDecision(False, f"the plan for protected environment {env_name} has {what}")
