"""Plan summary counts, masking and the protected-environment policy (pure functions)."""

from __future__ import annotations

import json

from stageflow.terraform.summary import action_of, check_policy, summarize

SECRET = "hunter2-very-secret"


def rc(address, actions, *, module=None, rtype="null_resource", before=None, after=None, **extra):
    d = {
        "address": address,
        "mode": "managed",
        "type": rtype,
        "name": address.split(".")[-1],
        "change": {"actions": actions, "before": before, "after": after, **extra},
    }
    if module:
        d["module_address"] = module
    return d


PLAN = {
    "format_version": "0.2",
    "resource_changes": [
        rc("null_resource.new", ["create"], after={"triggers": {"a": "1"}}, after_unknown={"id": True}),
        rc(
            "null_resource.sealed",
            ["update"],
            before={"id": "1", "triggers": {"token": SECRET}},
            after={"id": "1", "triggers": {"token": SECRET}},
            before_sensitive={"triggers": {}},
            after_sensitive={"triggers": {"token": True}},
        ),
        rc(
            "null_resource.rotated",
            ["delete", "create"],
            before={"id": "7", "triggers": {"generation": "1"}},
            after={"triggers": {"generation": "2"}},
            after_unknown={"id": True},
        ),
        rc('module.group.null_resource.member["y"]', ["delete"], module="module.group", before={"id": "3"}),
        rc('module.group.null_resource.member["z"]', ["create", "delete"], module="module.group"),
        rc("null_resource.same", ["no-op"]),
        {
            "address": "data.null_data_source.x",
            "mode": "data",
            "type": "null_data_source",
            "change": {"actions": ["read"]},
        },
        rc(
            "aws_s3_bucket.b",
            ["update"],
            rtype="aws_s3_bucket",
            before={"acl": "private"},
            after={"acl": "public"},
        ),
    ],
    "output_changes": {
        "token": {"actions": ["update"], "after": SECRET, "after_sensitive": True, "before_sensitive": True},
        "name": {"actions": ["create"], "after": "svc-dev", "after_sensitive": False},
        "same": {"actions": ["no-op"], "after": "x"},
    },
}


def test_action_words():
    assert action_of(["create"]) == "create"
    assert action_of(["delete", "create"]) == action_of(["create", "delete"]) == "replace"
    assert action_of(["no-op"]) == "no-op"


def test_counts_per_action_type_and_module():
    s = summarize(PLAN)
    assert dict(s.totals) == {"create": 1, "update": 2, "replace": 2, "delete": 1}
    assert dict(s.by_type["null_resource"]) == {"create": 1, "update": 1, "replace": 2, "delete": 1}
    assert dict(s.by_type["aws_s3_bucket"]) == {"create": 0, "update": 1, "replace": 0, "delete": 0}
    assert list(s.by_module) == ["root", "module.group"]
    assert dict(s.by_module["module.group"]) == {"create": 0, "update": 0, "replace": 1, "delete": 1}
    assert s.changes and s.destructive == 3
    assert s.headline() == "1 to create, 2 to update, 2 to replace, 1 to delete"


def test_sensitive_values_are_masked_everywhere():
    s = summarize(PLAN)
    text = s.table() + json.dumps(s.to_json())
    assert SECRET not in text
    sealed = next(r for r in s.resources if r.address == "null_resource.sealed")
    # sealed now, plain before: the same secret, so both sides are masked
    assert sealed.changed["triggers"] == ('{"token": "(sensitive)"}', '{"token": "(sensitive)"}')
    assert s.outputs["token"] == ("update", "(sensitive)")
    assert s.outputs["name"] == ("create", '"svc-dev"')
    assert "same" not in s.outputs


def test_changed_attributes_of_a_replacement():
    s = summarize(PLAN)
    rot = next(r for r in s.resources if r.address == "null_resource.rotated")
    assert rot.changed["triggers"] == ('{"generation": "1"}', '{"generation": "2"}')
    assert rot.changed["id"] == ('"7"', "(known after apply)")


def test_empty_plan():
    s = summarize({"resource_changes": [rc("null_resource.same", ["no-op"])]})
    assert not s.changes
    assert s.headline() == "no changes"
    assert s.table() == "no changes"


def test_policy():
    s = summarize(PLAN)
    refused = check_policy(s, env_name="prod", protected=True, allow_destroy=False)
    assert not refused.allowed
    assert refused.reason == "the plan for protected environment prod has 1 delete(s) and 2 replacement(s)"
    assert check_policy(s, env_name="prod", protected=True, allow_destroy=True).allowed
    assert check_policy(s, env_name="dev", protected=False, allow_destroy=False).allowed
    creates_only = summarize({"resource_changes": [rc("null_resource.new", ["create"])]})
    assert check_policy(creates_only, env_name="prod", protected=True, allow_destroy=False).allowed
