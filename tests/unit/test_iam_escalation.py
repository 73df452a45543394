"""The escalation check of tests/helpers/iam_policies.py on small plan-JSON shapes (the real roots are
planned in tests/integration/test_iam_policies.py)."""

from __future__ import annotations

import json

from tests.helpers.iam_policies import UNKNOWN, Role, Statement, escalations, roles_of_plan

ACCOUNT = "123456789012"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/svc-codebuild-deployer"
FUNCTION = f"arn:aws:iam::{ACCOUNT}:role/svc-function-dev"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/svc-function-boundary"
SAFE_BOUNDARY = {"svc-function-boundary": [Statement("Allow", ["logs:PutLogEvents"], ["*"], {})]}


def _roles(deployer_statements, *, function_boundary="svc-function-boundary"):
    deployer = Role("p:deployer", "svc-codebuild-deployer", None, deployer_statements)
    function = Role(
        "d:function",
        "svc-function-dev",
        function_boundary,
        [Statement("Allow", ["sqs:SendMessage"], ["*"], {})],
    )
    return [deployer, function]


def _cond(arn=BOUNDARY):
    return {"StringEquals iam:PermissionsBoundary": [arn]}


def test_a_pattern_its_own_name_matches_is_an_escalation():
    found = escalations(
        _roles(
            [
                Statement(
                    "Allow", ["iam:PutRolePolicy"], [f"arn:aws:iam::{ACCOUNT}:role/svc-*"], {}, "ServiceRoles"
                )
            ]
        ),
        SAFE_BOUNDARY,
    )
    assert any("matches the role itself" in f for f in found), found
    assert any("a pattern" in f for f in found), found


def test_exact_arns_of_bounded_roles_with_the_boundary_condition_pass():
    sts = [
        Statement("Allow", ["iam:PutRolePolicy", "iam:CreateRole"], [FUNCTION], _cond()),
        Statement(
            "Allow",
            ["iam:PassRole"],
            [FUNCTION],
            {"StringEquals iam:PassedToService": ["lambda.amazonaws.com"]},
        ),
        Statement("Deny", ["iam:DeleteRolePermissionsBoundary"], ["*"], {}),
    ]
    assert escalations(_roles(sts), SAFE_BOUNDARY) == []


def test_writes_without_the_boundary_condition_or_to_an_unbounded_role_fail():
    no_condition = escalations(
        _roles([Statement("Allow", ["iam:PutRolePolicy"], [FUNCTION], {})]), SAFE_BOUNDARY
    )
    assert any("without its boundary condition" in f for f in no_condition), no_condition
    unbounded = escalations(
        _roles([Statement("Allow", ["iam:PutRolePolicy"], [FUNCTION], _cond())], function_boundary=None),
        SAFE_BOUNDARY,
    )
    assert any("has no permissions boundary" in f for f in unbounded), unbounded


def test_wildcards_unknowns_and_iam_in_the_boundary_fail():
    star = escalations(_roles([Statement("Allow", ["iam:Get*"], ["*"], {})]), SAFE_BOUNDARY)
    assert any("on *" in f for f in star), star
    action_wildcard = escalations(_roles([Statement("Allow", ["iam:*"], [UNKNOWN], {})]), SAFE_BOUNDARY)
    assert any("any role" in f for f in action_wildcard), action_wildcard
    boundary = {"svc-function-boundary": [Statement("Allow", ["iam:PassRole"], ["*"], {})]}
    assert any("boundary" in f for f in escalations(_roles([]), boundary))


def test_policies_are_read_from_plan_json_known_or_from_a_documents_inputs():
    doc_inputs = {
        "statement": [
            {
                "actions": ["iam:PutRolePolicy"],
                "resources": [f"arn:aws:iam::{ACCOUNT}:role/svc-*"],
                "sid": "ServiceRoles",
            },
            {"actions": ["s3:PutObject"], "resources": [], "sid": "Artifacts"},
        ]
    }
    unknown = {"json": True, "statement": [{}, {"resources": True}]}
    plan = {
        "resource_changes": [
            {
                "address": "module.p.aws_iam_role.deployer",
                "mode": "managed",
                "type": "aws_iam_role",
                "change": {
                    "actions": ["create"],
                    "after": {"name": "svc-codebuild-deployer"},
                    "after_unknown": {},
                },
            },
            {
                "address": "module.p.aws_iam_role_policy.deployer",
                "mode": "managed",
                "type": "aws_iam_role_policy",
                "change": {
                    "actions": ["create"],
                    "after": {},
                    "after_unknown": {"policy": True, "role": True},
                },
            },
            {
                "address": "module.p.aws_iam_role_policy.known",
                "mode": "managed",
                "type": "aws_iam_role_policy",
                "change": {
                    "actions": ["create"],
                    "after": {
                        "policy": json.dumps(
                            {"Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]}
                        )
                    },
                    "after_unknown": {"role": True},
                },
            },
            {
                "address": "module.p.data.aws_iam_policy_document.deployer",
                "mode": "data",
                "type": "aws_iam_policy_document",
                "change": {"actions": ["read"], "after": doc_inputs, "after_unknown": unknown},
            },
        ],
        "configuration": {
            "root_module": {
                "module_calls": {
                    "p": {
                        "module": {
                            "resources": [
                                {
                                    "address": "aws_iam_role_policy.deployer",
                                    "expressions": {
                                        "role": {
                                            "references": [
                                                "aws_iam_role.deployer.id",
                                                "aws_iam_role.deployer",
                                            ]
                                        },
                                        "policy": {
                                            "references": ["data.aws_iam_policy_document.deployer.json"]
                                        },
                                    },
                                },
                                {
                                    "address": "aws_iam_role_policy.known",
                                    "expressions": {"role": {"references": ["aws_iam_role.deployer.id"]}},
                                },
                            ]
                        }
                    }
                }
            }
        },
    }
    roles, problems = roles_of_plan(plan, "pipeline")
    assert problems == []
    (deployer,) = roles
    by_sid = {st.sid: st for st in deployer.statements}
    assert by_sid["Artifacts"].resources == [UNKNOWN]
    assert any(st.allows("sns:Publish") for st in deployer.statements)
    assert any("matches the role itself" in f for f in escalations(roles, {}))


def test_a_boundary_may_be_put_only_conditioned_on_it_and_never_lifted():
    conditioned = Statement("Allow", ["iam:PutRolePermissionsBoundary"], [FUNCTION], _cond())
    assert escalations(_roles([conditioned]), SAFE_BOUNDARY) == []
    anyone = escalations(
        _roles([Statement("Allow", ["iam:PutRolePermissionsBoundary"], [FUNCTION], {})]), SAFE_BOUNDARY
    )
    assert any("may set any permissions boundary" in f for f in anyone), anyone
    lift = escalations(
        _roles([Statement("Allow", ["iam:DeleteRolePermissionsBoundary"], [FUNCTION], {})]), SAFE_BOUNDARY
    )
    assert any("may lift" in f for f in lift), lift
