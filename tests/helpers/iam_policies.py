"""Every IAM policy Terraform would create, read from plan JSON (``terraform show -json PLAN``), and the
escalation paths in them (docs/security.md, "The escalation test").

A plan of a root that was never applied leaves much unknown: a policy document that names a bucket's
ARN is read only at apply time, so its ``json`` is unknown. Its *inputs* are in the plan all the same
(the data source's ``statement`` blocks, with the unknown elements marked in ``after_unknown``), so the
statements are rebuilt from them; an unknown resource element stays visible as ``UNKNOWN`` and counts
as "could be anything" wherever that matters.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
import urllib.request
from dataclasses import dataclass, field

UNKNOWN = "(known after apply)"
ACCOUNT_ROLE = re.compile(r"^arn:[^:]+:iam::\d*:role/(?:.*/)?(?P<name>[^/]+)$")

# IAM actions that let a principal give a role (or itself) more rights, or act as a role.
ESCALATION_ACTIONS = (
    "iam:PutRolePolicy",
    "iam:PutUserPolicy",
    "iam:PutGroupPolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:AttachRolePolicy",
    "iam:AttachUserPolicy",
    "iam:AttachGroupPolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:PassRole",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:DeleteRolePermissionsBoundary",
)
# AWS-managed policies a role of ours may carry, with what they allow (none is an IAM action).
KNOWN_MANAGED = {
    "AWSXRayDaemonWriteAccess": ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSampling*"),
    # API Gateway's account logging role (infrastructure/bootstrap/api_gateway.tf): logs only
    "AmazonAPIGatewayPushToCloudWatchLogs": (
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogGroups",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
        "logs:GetLogEvents",
        "logs:FilterLogEvents",
    ),
}


@dataclass
class Statement:
    effect: str
    actions: list[str]
    resources: list[str]
    conditions: dict[str, list[str]]  # "test variable" -> values
    sid: str = ""
    source: str = ""  # the Terraform address it came from

    def allows(self, action: str) -> bool:
        return self.effect == "Allow" and any(
            fnmatch.fnmatchcase(action.lower(), a.lower()) for a in self.actions
        )

    def condition_values(self, variable: str) -> list[str]:
        return [
            v
            for k, vs in self.conditions.items()
            if k.split(" ", 1)[1].lower() == variable.lower()
            for v in vs
        ]


@dataclass
class Role:
    address: str  # root:address
    name: str
    boundary: str | None  # the permissions boundary policy's name, when the role has one
    statements: list[Statement] = field(default_factory=list)
    managed: list[str] = field(default_factory=list)  # managed policy ARNs attached

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::123456789012:role/{self.name}"

    def escalation_grants(self) -> list[Statement]:
        return [st for st in self.statements if any(st.allows(a) for a in ESCALATION_ACTIONS)]


# -- reading a plan ---------------------------------------------------------------------------------
def _modules(config: dict, prefix: str = ""):
    yield prefix, config
    for name, call in (config.get("module_calls") or {}).items():
        yield from _modules(call.get("module") or {}, f"{prefix}module.{name}.")


def _config_refs(plan: dict) -> dict[str, dict]:
    """Configuration address (``module.x.aws_iam_role_policy.y``) -> its expressions."""
    out = {}
    for prefix, mod in _modules(plan.get("configuration", {}).get("root_module", {})):
        for res in mod.get("resources", []):
            out[prefix + res["address"]] = res.get("expressions", {})
    return out


def _module_of(address: str) -> str:
    parts = re.findall(r"module\.[^.\[]+(?:\[[^\]]*\])?\.", address)
    return "".join(re.sub(r"\[[^\]]*\]", "", p) for p in parts)


def _states(plan: dict):
    """(address, values) of every resource and data source in the plan's prior state."""

    def walk(mod):
        for r in mod.get("resources", []):
            yield r["address"], r.get("values", {})
        for child in mod.get("child_modules", []):
            yield from walk(child)

    yield from walk(((plan.get("prior_state") or {}).get("values") or {}).get("root_module") or {})


def _statements_of_document(after: dict, unknown: dict, source: str) -> list[Statement]:
    """Statements from an aws_iam_policy_document's inputs (known parts; unknown ones marked)."""
    out = []
    unknown_statements = unknown.get("statement") if isinstance(unknown, dict) else None
    for i, st in enumerate(after.get("statement") or []):
        unk = (
            unknown_statements[i]
            if isinstance(unknown_statements, list) and i < len(unknown_statements)
            else {}
        )
        unk = unk if isinstance(unk, dict) else {}
        resources = list(st.get("resources") or [])
        res_unknown = unk.get("resources")
        if res_unknown is True:
            resources = [UNKNOWN]
        elif isinstance(res_unknown, list):
            resources = [
                UNKNOWN if flag is True else r for r, flag in zip(resources, res_unknown, strict=False)
            ]
            resources += [UNKNOWN] * (len(res_unknown) - len(resources))
        conditions = {}
        for c in st.get("condition") or []:
            conditions[f"{c['test']} {c['variable']}"] = list(c.get("values") or [])
        if st.get("not_actions") or st.get("not_resources"):
            resources = [UNKNOWN]  # NotAction/NotResource: treat as anything
        actions = ["*"] if st.get("not_actions") else list(st.get("actions") or [])
        out.append(
            Statement(
                effect=st.get("effect") or "Allow",
                actions=actions,
                resources=resources,
                conditions=conditions,
                sid=st.get("sid") or "",
                source=source,
            )
        )
    return out


def _statements_of_json(text: str, source: str) -> list[Statement]:
    doc = json.loads(text)
    sts = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    out = []
    for st in sts:
        as_list = lambda v: v if isinstance(v, list) else ([] if v is None else [v])  # noqa: E731
        conditions = {
            f"{test} {var}": as_list(values)
            for test, pairs in (st.get("Condition") or {}).items()
            for var, values in pairs.items()
        }
        actions = as_list(st.get("Action")) or (["*"] if "NotAction" in st else [])
        resources = as_list(st.get("Resource")) or ([UNKNOWN] if "NotResource" in st else [])
        out.append(
            Statement(st.get("Effect", "Allow"), actions, resources, conditions, st.get("Sid", ""), source)
        )
    return out


def _documents(plan: dict) -> dict[str, list[Statement]]:
    """Every aws_iam_policy_document of the plan -> its statements."""
    docs: dict[str, list[Statement]] = {}
    for address, values in _states(plan):
        if ".aws_iam_policy_document." in f".{address}" and values.get("json"):
            docs[address] = _statements_of_json(values["json"], address)
    for rc in plan.get("resource_changes", []):
        if rc.get("type") != "aws_iam_policy_document" or rc["address"] in docs:
            continue
        ch = rc["change"]
        after, unknown = ch.get("after") or {}, ch.get("after_unknown") or {}
        if after.get("json") and not unknown.get("json"):
            docs[rc["address"]] = _statements_of_json(after["json"], rc["address"])
        else:
            docs[rc["address"]] = _statements_of_document(after, unknown, rc["address"])
    return docs


def _reference(expressions: dict, attr: str, kind: str) -> str | None:
    """The first ``kind.NAME[...]`` an attribute's expression refers to (e.g. the role of a policy)."""
    for ref in (expressions.get(attr) or {}).get("references", []):
        m = re.match(rf"^((?:data\.)?{re.escape(kind)}\.[\w-]+(?:\[[^\]]*\])?)", ref)
        if m and (not kind.startswith("aws_iam_role") or "." in ref):
            return m.group(1)
    return None


def roles_of_plan(plan: dict, root: str) -> tuple[list[Role], list[str]]:
    """The roles a plan creates with every identity policy on them, and what could not be read."""
    problems: list[str] = []
    docs = _documents(plan)
    refs = _config_refs(plan)
    changes = [rc for rc in plan.get("resource_changes", []) if rc["change"]["actions"] != ["delete"]]
    roles: dict[str, Role] = {}
    managed_policies: dict[str, tuple[str, list[Statement]]] = {}  # address -> (name, statements)
    for rc in changes:
        after = rc["change"].get("after") or {}
        if rc["type"] == "aws_iam_role" and rc["mode"] == "managed":
            boundary = after.get("permissions_boundary")
            if (rc["change"].get("after_unknown") or {}).get("permissions_boundary"):
                boundary = UNKNOWN
            roles[rc["address"]] = Role(
                f"{root}:{rc['address']}",
                after.get("name") or UNKNOWN,
                boundary.rsplit("/", 1)[-1] if boundary and boundary != UNKNOWN else boundary,
            )
        if rc["type"] == "aws_iam_policy" and rc["mode"] == "managed":
            managed_policies[rc["address"]] = (
                after.get("name") or UNKNOWN,
                _policy_statements(rc, docs, refs),
            )
    for rc in changes:
        if rc["mode"] != "managed" or rc["type"] not in (
            "aws_iam_role_policy",
            "aws_iam_role_policy_attachment",
        ):
            continue
        module = _module_of(rc["address"])
        expr = refs.get(_config_key(rc["address"]), {})
        role_ref = _reference(expr, "role", "aws_iam_role")
        role = None
        if role_ref:
            index = re.search(r"(\[[^\]]*\])$", rc["address"])
            candidates = [module + role_ref]
            if index and "[" not in role_ref:
                candidates.insert(0, module + role_ref + index.group(1))
            role = next((roles[c] for c in candidates if c in roles), None)
        if role is None:
            name = (rc["change"].get("after") or {}).get("role")
            role = next((r for r in roles.values() if name and r.name == name), None)
        if role is None:
            problems.append(f"{root}:{rc['address']}: the role it applies to is not one this plan creates")
            continue
        if rc["type"] == "aws_iam_role_policy":
            sts = _policy_statements(rc, docs, refs)
            if not sts:
                problems.append(f"{root}:{rc['address']}: its policy could not be read from the plan")
            role.statements.extend(sts)
        else:
            arn = (rc["change"].get("after") or {}).get("policy_arn")
            pref = _reference(expr, "policy_arn", "aws_iam_policy")
            if pref and module + pref in managed_policies:
                name, sts = managed_policies[module + pref]
                role.managed.append(name)
                role.statements.extend(sts)
            elif arn and arn.rsplit("/", 1)[-1] in KNOWN_MANAGED and ":iam::aws:policy/" in arn:
                role.managed.append(arn)
                role.statements.append(
                    Statement("Allow", list(KNOWN_MANAGED[arn.rsplit("/", 1)[-1]]), ["*"], {}, "", arn)
                )
            else:
                problems.append(
                    f"{root}:{rc['address']}: managed policy {arn or UNKNOWN} is not one reviewed here"
                )
    return list(roles.values()), problems


def _config_key(address: str) -> str:
    """``module.a["k"].aws_x.y[0]`` -> the configuration address ``module.a.aws_x.y``."""
    return re.sub(r"\[[^\]]*\]", "", address)


def _policy_statements(rc: dict, docs: dict[str, list[Statement]], refs: dict) -> list[Statement]:
    after, unknown = rc["change"].get("after") or {}, rc["change"].get("after_unknown") or {}
    if after.get("policy") and not unknown.get("policy"):
        return _statements_of_json(after["policy"], rc["address"])
    module = _module_of(rc["address"])
    doc_ref = _reference(refs.get(_config_key(rc["address"]), {}), "policy", "data.aws_iam_policy_document")
    if not doc_ref:
        return []
    for candidate in (
        module + doc_ref,
        module + doc_ref + "[0]",
        module + re.sub(r"\[[^\]]*\]$", "", doc_ref),
    ):
        if candidate in docs:
            return docs[candidate]
    return []


def boundary_documents(plan: dict) -> dict[str, list[Statement]]:
    """Managed policies the plan creates, by name (the permissions boundary is one)."""
    docs = _documents(plan)
    refs = _config_refs(plan)
    out = {}
    for rc in plan.get("resource_changes", []):
        if rc["type"] == "aws_iam_policy" and rc["mode"] == "managed":
            out[(rc["change"].get("after") or {}).get("name") or UNKNOWN] = _policy_statements(rc, docs, refs)
    return out


# -- the escalation check ---------------------------------------------------------------------------
def _matches(pattern: str, arn: str) -> bool:
    return pattern == UNKNOWN or fnmatch.fnmatchcase(arn, pattern)


def escalations(roles: list[Role], boundaries: dict[str, list[Statement]]) -> list[str]:
    """Every escalation path among ``roles`` (of all roots together), one line each. A role R may hold an
    escalation action (``ESCALATION_ACTIONS``) only on exact role ARNs (no wildcard: a pattern lets it
    create a new role under it and give that anything), never on itself, never on a role that holds an
    escalation action itself, and only on roles that carry a permissions boundary without any IAM
    action, with every policy write conditioned on that boundary (else what it writes into them is
    unbounded: it would run code as a role with more rights than its own). ``*`` with any IAM action
    is an escalation too, as is an unknown resource."""
    found: list[str] = []
    by_arn = {r.arn: r for r in roles}
    escalating = {r.arn for r in roles if r.escalation_grants()}
    for name, sts in boundaries.items():
        for st in sts:
            if st.effect == "Allow" and any(a.lower().startswith("iam:") or a == "*" for a in st.actions):
                found.append(f"boundary {name}: allows {st.actions} ({st.sid or st.source})")
    for role in roles:
        for st in role.statements:
            if st.effect != "Allow":
                continue
            iam_actions = [a for a in st.actions if a.lower().startswith("iam:") or a == "*"]
            if iam_actions and any(r == "*" for r in st.resources):
                found.append(f"{role.name}: {iam_actions} on * ({st.sid or st.source})")
        for st in role.escalation_grants():
            actions = [a for a in ESCALATION_ACTIONS if st.allows(a)]
            for pattern in st.resources:
                where = f"{role.name}: {actions} on {pattern} ({st.sid or st.source})"
                if pattern == "*" or pattern == UNKNOWN:
                    found.append(f"{where}: any role")
                    continue
                if not pattern.startswith("arn:") or ":role/" not in pattern:
                    if any(a in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion") for a in actions):
                        found.append(f"{where}: may rewrite a managed policy")
                    continue
                if any(ch in pattern.split(":role/", 1)[1] for ch in "*?"):
                    found.append(f"{where}: a pattern (a role created under it could be given anything)")
                if _matches(pattern, role.arn):
                    found.append(f"{where}: matches the role itself")
                for arn in sorted(escalating - {role.arn}):
                    if _matches(pattern, arn):
                        found.append(f"{where}: matches {by_arn[arn].name}, which can escalate itself")
                writes = [a for a in actions if a.startswith(("iam:Put", "iam:Attach"))]
                for target in [r for r in roles if _matches(pattern, r.arn) and r is not role]:
                    if not target.boundary or target.boundary == UNKNOWN:
                        found.append(f"{where}: {target.name} has no permissions boundary (unbounded rights)")
                    elif target.boundary not in boundaries:
                        found.append(
                            f"{where}: {target.name}'s boundary {target.boundary} is not in any plan"
                        )
                    elif writes:
                        bound = [v.rsplit("/", 1)[-1] for v in st.condition_values("iam:PermissionsBoundary")]
                        if target.boundary not in bound:
                            found.append(
                                f"{where}: writes {target.name}'s policies without its boundary condition"
                            )
                if "iam:DeleteRolePermissionsBoundary" in actions:
                    found.append(f"{where}: may lift a permissions boundary")
                if "iam:PutRolePermissionsBoundary" in actions and not st.condition_values(
                    "iam:PermissionsBoundary"
                ):
                    found.append(f"{where}: may set any permissions boundary")
    return sorted(set(found))


# -- enforcement on the emulator -----------------------------------------------------------------------
def auth(endpoint: str, count: str) -> None:
    """moto's IAM check: on after ``count`` more requests (``0``: now), off with ``inf``."""
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - the emulator on loopback


@contextlib.contextmanager
def enforcing(endpoint: str):
    """moto's IAM check on for every request inside the block, off again after it."""
    auth(endpoint, "0")
    try:
        yield
    finally:
        auth(endpoint, "inf")
