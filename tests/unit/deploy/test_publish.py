"""LambdaPublisher on botocore's Stubber over a real lambda client: the exact calls, in order, validated
against the service model. A version is published only when the code or the frozen configuration
differs from what the alias serves; ``changed`` names what differs, never a value."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from stageflow.deploy.publish import LambdaPublisher, differences, publish
from stageflow.errors import EnvironmentFailure, ExitCode
from stageflow.packaging.lambda_zip import zip_files
from stageflow.ports import Published

FN, ALIAS = "orders-dev", "live"
ARTIFACT = zip_files({"app.py": b"def handler(event, context):\n    return {'statusCode': 200}\n"})
OLD_SHA = "b2xkLWNvZGUtc2hhMjU2LW9sZC1jb2RlLXNoYTI1Ni0="


def cfg(**over) -> dict:
    base = {
        "FunctionName": FN,
        "CodeSha256": ARTIFACT.code_sha256,
        "Environment": {"Variables": {"LOG_LEVEL": "info", "DB_PASSWORD": "pw-one-1234"}},
        "MemorySize": 256,
        "Timeout": 10,
        "Handler": "app.handler",
        "Runtime": "python3.12",
        "Architectures": ["arm64"],
        "Layers": [
            {"Arn": "arn:aws:lambda:us-east-1:123456789012:layer:a:1", "CodeSize": 10},
            {"Arn": "arn:aws:lambda:us-east-1:123456789012:layer:b:2", "CodeSize": 20},
        ],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def lam():
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _alias(stub, version="3", weights=None):
    resp = {"Name": ALIAS, "FunctionVersion": version}
    if weights is not None:
        resp["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    stub.add_response("get_alias", resp, {"FunctionName": FN, "Name": ALIAS})


def _configs(stub, serving, latest, version="3"):
    stub.add_response("get_function_configuration", serving, {"FunctionName": FN, "Qualifier": version})
    stub.add_response("get_function_configuration", latest, {"FunctionName": FN})


def _publish_version(stub, version="4", sha=ARTIFACT.code_sha256, description=""):
    stub.add_response(
        "publish_version",
        {"Version": version, "CodeSha256": sha},
        {"FunctionName": FN, "CodeSha256": sha, "Description": description},
    )


def test_nothing_changed_on_a_settled_alias_publishes_nothing(lam):
    client, stub = lam
    _alias(stub, "3")
    _configs(stub, cfg(), cfg())
    out = LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert out == Published(
        None,
        "3",
        ARTIFACT.code_sha256,
        "orders-dev:live already serves this code and configuration (version 3)",
        (),
    )


def test_new_code_is_uploaded_waited_for_and_published(lam):
    client, stub = lam
    _alias(stub, "3")
    _configs(stub, cfg(CodeSha256=OLD_SHA), cfg(CodeSha256=OLD_SHA))
    stub.add_response(
        "update_function_code",
        {"FunctionName": FN, "CodeSha256": ARTIFACT.code_sha256},
        {"FunctionName": FN, "ZipFile": ARTIFACT.data},
    )
    stub.add_response(
        "get_function",
        {"Configuration": {"FunctionName": FN, "LastUpdateStatus": "Successful"}},
        {"FunctionName": FN},
    )
    stub.add_response("get_function_configuration", cfg(), {"FunctionName": FN})
    _publish_version(stub, "4", description="build 17")
    out = publish(client, FN, ALIAS, ARTIFACT, description="build 17")
    assert out == Published("4", "3", ARTIFACT.code_sha256, "published version 4 (code changed)", ("code",))


def test_code_already_uploaded_is_not_uploaded_again(lam):
    """$LATEST holds the artifact (an earlier run uploaded it) but the alias serves old code."""
    client, stub = lam
    _alias(stub, "3")
    _configs(stub, cfg(CodeSha256=OLD_SHA), cfg())
    _publish_version(stub, "4")
    out = LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert (out.version, out.changed, out.reason) == ("4", ("code",), "published version 4 (code changed)")


def test_upload_that_does_not_finish_is_exit_3(lam):
    client, stub = lam
    _alias(stub, "3")
    _configs(stub, cfg(CodeSha256=OLD_SHA), cfg(CodeSha256=OLD_SHA))
    stub.add_response(
        "update_function_code",
        {"FunctionName": FN},
        {"FunctionName": FN, "ZipFile": ARTIFACT.data},
    )
    stub.add_response(
        "get_function",
        {"Configuration": {"FunctionName": FN, "LastUpdateStatus": "Failed"}},
        {"FunctionName": FN},
    )
    with pytest.raises(EnvironmentFailure, match=r"^publishing orders-dev: update did not finish: ") as info:
        LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert info.value.exit_code == ExitCode.ENVIRONMENT


@pytest.mark.parametrize(
    ("over", "label"),
    [
        ({"MemorySize": 512}, "memory"),
        ({"Timeout": 30}, "timeout"),
        ({"Handler": "app.other"}, "handler"),
        ({"Runtime": "python3.13"}, "runtime"),
        ({"Architectures": ["x86_64"]}, "architectures"),
        ({"Layers": [{"Arn": "arn:aws:lambda:us-east-1:123456789012:layer:a:2", "CodeSize": 10}]}, "layers"),
        ({"Layers": None}, "layers"),
    ],
)
def test_each_frozen_setting_alone_publishes_and_is_named(lam, over, label):
    client, stub = lam
    _alias(stub, "3")
    _configs(stub, cfg(), cfg(**over))
    _publish_version(stub, "4")
    out = LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert out == Published(
        "4", "3", ARTIFACT.code_sha256, f"published version 4 ({label} changed)", (label,)
    )


def test_environment_change_names_the_keys_never_the_values(lam):
    client, stub = lam
    _alias(stub, "3")
    latest = cfg(Environment={"Variables": {"LOG_LEVEL": "info", "DB_PASSWORD": "pw-two-5678", "NEW": "x1"}})
    _configs(stub, cfg(), latest)
    _publish_version(stub, "4")
    out = LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert out.changed == ("environment (DB_PASSWORD, NEW)",)
    assert out.reason == "published version 4 (environment (DB_PASSWORD, NEW) changed)"
    assert "pw-" not in repr(out)


def test_several_changes_are_listed_in_a_fixed_order(lam):
    client, stub = lam
    _alias(stub, "3")
    _configs(stub, cfg(CodeSha256=OLD_SHA, Timeout=3, Environment=None), cfg(MemorySize=1024))
    _publish_version(stub, "9")
    out = LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert out.changed == ("code", "environment (DB_PASSWORD, LOG_LEVEL)", "memory", "timeout")
    assert out.version == "9" and out.previous_version == "3"


def test_unsettled_alias_publishes_even_when_nothing_changed(lam):
    """A canary in flight (weights on the alias) is never called "already serving"."""
    client, stub = lam
    _alias(stub, "3", {"5": 0.1})
    _configs(stub, cfg(), cfg())
    _publish_version(stub, "6")
    out = LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert out == Published(
        "6", "3", ARTIFACT.code_sha256, "published version 6 (an unsettled alias changed)"
    )


def test_zero_weight_routing_counts_as_settled(lam):
    client, stub = lam
    _alias(stub, "3", {"5": 0.0})
    _configs(stub, cfg(), cfg())
    assert LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT).version is None


def test_description_is_cut_to_256_characters(lam):
    client, stub = lam
    _alias(stub, "3")
    _configs(stub, cfg(), cfg(Timeout=11))
    _publish_version(stub, "4", description="d" * 256)
    assert LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT, description="d" * 300).version == "4"


def test_lambda_error_while_reading_is_one_line_exit_3(lam):
    client, stub = lam
    _alias(stub, "3")
    stub.add_client_error(
        "get_function_configuration",
        "ResourceNotFoundException",
        "Function not found: orders-dev:3",
        404,
        expected_params={"FunctionName": FN, "Qualifier": "3"},
    )
    with pytest.raises(EnvironmentFailure) as info:
        LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert info.value.one_line() == (
        "publishing orders-dev: ResourceNotFoundException: Function not found: orders-dev:3"
    )
    assert info.value.exit_code == ExitCode.ENVIRONMENT


def test_missing_alias_is_one_line_exit_3(lam):
    client, stub = lam
    stub.add_client_error(
        "get_alias",
        "ResourceNotFoundException",
        "Alias not found",
        404,
        expected_params={"FunctionName": FN, "Name": ALIAS},
    )
    with pytest.raises(EnvironmentFailure) as info:
        LambdaPublisher(client, FN, ALIAS).publish(ARTIFACT)
    assert info.value.one_line() == "lambda orders-dev:live: ResourceNotFoundException: Alias not found"


# --- differences(): the comparison itself --------------------------------------------------------------


def test_equivalent_configurations_differ_in_nothing():
    a = cfg(Layers=list(reversed(cfg()["Layers"])))  # layer order does not matter
    assert differences(cfg(), a) == ()
    # no Architectures means x86_64; no Environment means no variables
    assert differences(cfg(Architectures=None), cfg(Architectures=["x86_64"])) == ()
    assert differences(cfg(Environment=None), cfg(Environment={"Variables": {}})) == ()
    assert differences(cfg(Environment=None), cfg(Environment={})) == ()


def test_fields_outside_a_version_are_ignored():
    assert differences(cfg(), {**cfg(), "LastModified": "2026-01-02", "Description": "other"}) == ()


def test_architectures_default_is_x86_64_not_anything():
    assert differences(cfg(Architectures=None), cfg(Architectures=["arm64"])) == ("architectures",)
