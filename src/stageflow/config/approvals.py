"""``[environments.NAME.approvals]`` and ``[approvers]`` → :class:`Approvals` and the identity → roles
map, strictly (``r`` is the config reader: ``fail``, ``table``, ``check_keys``, ``get``).

One setting per pause kind makes its deadline: ``before_canary_timeout_minutes`` (design: 24 h, then
rejected) and ``timeout_minutes`` (a canary step; design: 2 h, then rolled back). In the pipeline
``STAGEFLOW_APPROVAL_TIMEOUT_MINUTES`` (set by infrastructure/modules/pipeline from the same Terraform
variable as CodePipeline's canary approval window) replaces ``timeout_minutes``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from stageflow.config.model import Approvals

ROLE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IDENTITY_RE = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
APPROVAL_TIMEOUT_VAR = "STAGEFLOW_APPROVAL_TIMEOUT_MINUTES"  # the pipeline's one value (pipeline module)
MAX_APPROVAL_MINUTES = 10080  # 7 days: CodePipeline's longest manual approval


def parse_approvals(
    r: Any, raw: dict, key: str, base: dict, approvers: Mapping[str, tuple[str, ...]]
) -> Approvals:
    ak = f"{key}.approvals"
    approvals_raw = r.table(raw.get("approvals", {}), ak)
    r.check_keys(approvals_raw, ak, {f.name for f in dataclasses.fields(Approvals)})
    ab: Approvals = base["approvals"]
    hi = MAX_APPROVAL_MINUTES
    roles = r.get(approvals_raw, ak, "roles", list, list(ab.roles))
    for i, role in enumerate(roles):
        if not isinstance(role, str) or not ROLE_RE.match(role):
            raise r.fail(f"{ak}.roles[{i}]", f"must be a role name (letters, digits, '-', '_'), got {role!r}")
        if not any(role in held for held in approvers.values()):
            raise r.fail(
                f"{ak}.roles[{i}]", f"nobody holds role {role!r}: map an identity to it in [approvers]"
            )
    if len(set(roles)) != len(roles):
        raise r.fail(f"{ak}.roles", "lists a role twice")
    approvals = Approvals(
        before_canary=r.get(approvals_raw, ak, "before_canary", bool, ab.before_canary),
        between_steps=r.get(approvals_raw, ak, "between_steps", bool, ab.between_steps),
        timeout_minutes=r.get(approvals_raw, ak, "timeout_minutes", float, ab.timeout_minutes, lo=1, hi=hi),
        before_canary_timeout_minutes=r.get(
            approvals_raw,
            ak,
            "before_canary_timeout_minutes",
            float,
            ab.before_canary_timeout_minutes,
            lo=1,
            hi=hi,
        ),
        required=r.get(approvals_raw, ak, "required", int, ab.required, lo=1, hi=10),
        roles=tuple(roles),
    )
    override = os.environ.get(APPROVAL_TIMEOUT_VAR, "").strip()
    if override:  # set by the pipeline from the same Terraform value as CodePipeline's approval window
        value = r.get(
            {APPROVAL_TIMEOUT_VAR: _number(override)}, "", APPROVAL_TIMEOUT_VAR, float, 0, lo=1, hi=hi
        )
        approvals = dataclasses.replace(approvals, timeout_minutes=value)
    return approvals


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def parse_approvers(r: Any, data: dict) -> Mapping[str, tuple[str, ...]]:
    """``[approvers]``: identity = ["role", ...] (the identity: an AWS role session name or user name)."""
    raw = r.table(data.get("approvers", {}), "approvers")
    out: dict[str, tuple[str, ...]] = {}
    for who, roles in raw.items():
        key = f"approvers.{who}"
        if not IDENTITY_RE.match(who):
            raise r.fail(key, "an identity is letters, digits and '+=,.@_-' (an AWS session or user name)")
        if not isinstance(roles, list) or not all(isinstance(x, str) and ROLE_RE.match(x) for x in roles):
            raise r.fail(key, f"must be an array of role names, got {type(roles).__name__}")
        out[who] = tuple(roles)
    return MappingProxyType(out)
