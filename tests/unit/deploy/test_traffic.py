"""AliasTraffic on botocore's Stubber over a real lambda client: the exact UpdateAlias parameters for
every weight, the state read back, and Lambda errors as one-line errors with their exit codes."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from stageflow.deploy.traffic import AliasTraffic, lambda_call
from stageflow.errors import EnvironmentFailure, ExitCode, UsageError
from stageflow.ports import AliasState

FN, ALIAS = "orders-prod", "live"


@pytest.fixture
def lam():
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _get_alias(stub, version, weights=None, revision="r1"):
    resp = {"Name": ALIAS, "FunctionVersion": version, "RevisionId": revision}
    if weights is not None:
        resp["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    stub.add_response("get_alias", resp, {"FunctionName": FN, "Name": ALIAS})


def _update_alias(stub, version, weights, revision="r1", new_revision="r2"):
    """The UpdateAlias carrying ``revision`` (the alias state it was computed from); Lambda answers
    with the alias as updated and its new revision."""
    answer = {"Name": ALIAS, "FunctionVersion": version, "RevisionId": new_revision}
    if weights:
        answer["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    stub.add_response(
        "update_alias",
        answer,
        {
            "FunctionName": FN,
            "Name": ALIAS,
            "FunctionVersion": version,
            "RoutingConfig": {"AdditionalVersionWeights": weights},
            "RevisionId": revision,
        },
    )


# --- state --------------------------------------------------------------------------------------------


def test_state_reads_primary_and_weights(lam):
    client, stub = lam
    _get_alias(stub, "3", {"4": 0.25})
    st = AliasTraffic(client, FN, ALIAS).state()
    assert st == AliasState("3", {"4": 0.25}) and st.revision == "r1"
    assert st.weights == {"4": 25, "3": 75} and not st.settled


def test_state_without_routing_is_settled(lam):
    client, stub = lam
    _get_alias(stub, "7")
    _get_alias(stub, "7", {})
    t = AliasTraffic(client, FN, ALIAS)
    for _ in range(2):
        st = t.state()
        assert st == AliasState("7", {}) and st.settled and st.weights == {"7": 100}


# --- set_canary / restore: the exact UpdateAlias ------------------------------------------------------


@pytest.mark.parametrize(("weight", "fraction"), [(1, 0.01), (10, 0.1), (33, 0.33), (50, 0.5), (99, 0.99)])
def test_set_canary_routes_the_weight_to_the_canary_and_keeps_stable_primary(lam, weight, fraction):
    client, stub = lam
    _get_alias(stub, "3")
    _update_alias(stub, "3", {"4": fraction})
    st = AliasTraffic(client, FN, ALIAS).set_canary("3", "4", weight)
    assert st == AliasState("3", {"4": fraction})
    assert st.weights == {"4": weight, "3": 100 - weight}


def test_set_canary_zero_clears_the_weights(lam):
    client, stub = lam
    _get_alias(stub, "3", {"4": 0.1})
    _update_alias(stub, "3", {})
    assert AliasTraffic(client, FN, ALIAS).set_canary("3", "4", 0) == AliasState("3", {})


@pytest.mark.parametrize("weight", [100, 150])
def test_set_canary_at_100_promotes_the_canary(lam, weight):
    client, stub = lam
    _get_alias(stub, "3", {"4": 0.5})
    _update_alias(stub, "4", {})
    st = AliasTraffic(client, FN, ALIAS).set_canary("3", "4", weight)
    assert st == AliasState("4", {}) and st.weights == {"4": 100}


def test_restore_sends_everything_to_the_version(lam):
    client, stub = lam
    _get_alias(stub, "3", {"4": 0.5})
    _update_alias(stub, "3", {})
    assert AliasTraffic(client, FN, ALIAS).restore("3") == AliasState("3", {})


def test_each_update_carries_the_revision_it_was_computed_from(lam):
    """Issue 24 item 6: the second step is guarded by the revision the first step made, not re-read."""
    client, stub = lam
    _get_alias(stub, "3", revision="r1")
    _update_alias(stub, "3", {"4": 0.1}, revision="r1", new_revision="r2")
    _update_alias(stub, "3", {"4": 0.5}, revision="r2", new_revision="r3")
    t = AliasTraffic(client, FN, ALIAS)
    t.set_canary("3", "4", 10)
    assert t.set_canary("3", "4", 50).revision == "r3"


def test_a_stale_revision_is_changed_by_another_run_and_moves_nothing(lam):
    from stageflow.deploy.traffic import AliasChanged

    client, stub = lam
    _get_alias(stub, "3", {"4": 0.1}, revision="r1")
    stub.add_client_error(
        "update_alias", "PreconditionFailedException", "The Revision Id provided does not match", 412
    )
    _get_alias(stub, "3", revision="r9")  # what the alias is now: a rollback put it on v3
    t = AliasTraffic(client, FN, ALIAS)
    t.state()
    with pytest.raises(AliasChanged) as info:
        t.set_canary("3", "4", 50)
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert "changed by another run" in info.value.one_line() and "nothing moved" in info.value.one_line()
    assert info.value.now == AliasState("3", {}) and t.revision == "r9"


def test_update_alias_error_is_one_line_exit_3(lam):
    client, stub = lam
    _get_alias(stub, "3")
    stub.add_client_error(
        "update_alias",
        "ResourceConflictException",
        "The operation cannot be performed at this time.\nAn update is in progress",
        409,
    )
    with pytest.raises(EnvironmentFailure) as info:
        AliasTraffic(client, FN, ALIAS).set_canary("3", "4", 10)
    err = info.value
    assert err.exit_code == ExitCode.ENVIRONMENT == 3
    assert err.one_line() == (
        "lambda orders-prod:live: ResourceConflictException: "
        "The operation cannot be performed at this time. An update is in progress"
    )


def test_lambda_call_passes_other_errors_through():
    def boom(**kwargs):
        raise KeyError(kwargs["x"])

    with pytest.raises(KeyError):
        lambda_call("what", boom, x="k")
    assert lambda_call("what", lambda **kw: kw, a=1) == {"a": 1}


# --- versions -----------------------------------------------------------------------------------------


def test_version_exists(lam):
    client, stub = lam
    stub.add_response(
        "get_function_configuration",
        {"FunctionName": FN, "Version": "4"},
        {"FunctionName": FN, "Qualifier": "4"},
    )
    assert AliasTraffic(client, FN, ALIAS).version_exists("4") is True


@pytest.mark.parametrize("version", ["$LATEST", "live", "4a", "", "-1"])
def test_non_numeric_version_does_not_exist_without_asking(lam, version):
    client, _ = lam  # the Stubber fails any call: none may be made
    assert AliasTraffic(client, FN, ALIAS).version_exists(version) is False


def test_missing_version_does_not_exist(lam):
    client, stub = lam
    stub.add_client_error(
        "get_function_configuration",
        "ResourceNotFoundException",
        "Function not found",
        404,
        expected_params={"FunctionName": FN, "Qualifier": "9"},
    )
    assert AliasTraffic(client, FN, ALIAS).version_exists("9") is False


def test_other_error_when_checking_a_version_is_exit_3(lam):
    client, stub = lam
    stub.add_client_error("get_function_configuration", "AccessDeniedException", "not allowed", 403)
    with pytest.raises(EnvironmentFailure) as info:
        AliasTraffic(client, FN, ALIAS).version_exists("4")
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert info.value.one_line() == (
        "lambda orders-prod: An error occurred (AccessDeniedException) when calling the "
        "GetFunctionConfiguration operation: not allowed"
    )


def test_require_version_missing_is_a_usage_error(lam):
    client, stub = lam
    stub.add_client_error("get_function_configuration", "ResourceNotFoundException", "nope", 404)
    t = AliasTraffic(client, FN, ALIAS)
    with pytest.raises(UsageError) as info:
        t.require_version("9")
    assert info.value.exit_code == ExitCode.USAGE == 2
    assert info.value.one_line() == (
        "version '9' of orders-prod does not exist (list versions: aws lambda list-versions-by-function)"
    )
    with pytest.raises(UsageError, match=r"^version '\$LATEST' of orders-prod does not exist$"):
        t.require_version("$LATEST")


def test_require_version_present_returns_quietly(lam):
    client, stub = lam
    stub.add_response("get_function_configuration", {"Version": "4"}, {"FunctionName": FN, "Qualifier": "4"})
    assert AliasTraffic(client, FN, ALIAS).require_version("4") is None


def test_code_sha256_of_a_version(lam):
    client, stub = lam
    stub.add_response(
        "get_function_configuration",
        {"Version": "4", "CodeSha256": "c2hhLWZvdXI="},
        {"FunctionName": FN, "Qualifier": "4"},
    )
    assert AliasTraffic(client, FN, ALIAS).code_sha256("4") == "c2hhLWZvdXI="


def test_code_sha256_error_is_one_line_exit_3(lam):
    client, stub = lam
    stub.add_client_error("get_function_configuration", "ResourceNotFoundException", "gone", 404)
    with pytest.raises(
        EnvironmentFailure, match=r"^lambda orders-prod:live: ResourceNotFoundException: gone$"
    ):
        AliasTraffic(client, FN, ALIAS).code_sha256("4")
