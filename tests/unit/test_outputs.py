"""The outputs contract: the optional ``functions`` output names every function of a release."""

import pytest

from stageflow.errors import EnvironmentFailure
from stageflow.outputs import FunctionTarget, parse_outputs

BASE = {
    "function_name": "orders-api-dev",
    "alias_name": "live",
    "alarm_names": ["a"],
    "topic_arn": "arn:aws:sns:eu-west-1:1:t",
    "history_table": "h",
}


def test_without_functions_output_the_one_function_is_the_release():
    out = parse_outputs({k: {"value": v} for k, v in BASE.items()})
    assert out.functions == (FunctionTarget("orders-api-dev", "orders-api-dev", "live"),)


def test_functions_output_lists_every_function_and_survives_the_cache_round_trip():
    raw = {k: {"value": v} for k, v in BASE.items()}
    raw["functions"] = {
        "value": {
            "api": {"function_name": "orders-api-dev", "alias_name": "live"},
            "worker": {"function_name": "orders-worker-dev", "alias_name": "live"},
        }
    }
    out = parse_outputs(raw)
    assert [f.key for f in out.functions] == ["api", "worker"]
    assert out.functions[1] == FunctionTarget("worker", "orders-worker-dev", "live")
    assert parse_outputs(out.to_json()) == out


@pytest.mark.parametrize("bad", [{"api": {"function_name": "x"}}, {"api": "x"}, "x", [{"key": ""}]])
def test_malformed_functions_output_is_one_clear_error(bad):
    with pytest.raises(EnvironmentFailure, match="output 'functions' must map"):
        parse_outputs({**BASE, "functions": bad})


def test_the_front_doors_url_is_optional_and_survives_the_cache_round_trip():
    assert parse_outputs(BASE).url is None
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1-dev"
    out = parse_outputs({**{k: {"value": v} for k, v in BASE.items()}, "url": {"value": url}})
    assert out.url == url and parse_outputs(out.to_json()).url == url


@pytest.mark.parametrize("bad", [3, "ftp://x", ["https://x"]])
def test_a_url_output_that_is_not_an_http_url_is_exit_3(bad):
    with pytest.raises(EnvironmentFailure, match="output 'url' must be an http"):
        parse_outputs({**BASE, "url": bad})


FIS = {
    "AWS_LAMBDA_EXEC_WRAPPER": "/opt/aws-fis/bootstrap",
    "AWS_FIS_CONFIGURATION_LOCATION": "arn:aws:s3:::orders-staging-fis-config-1/FisConfigs/",
}


def test_the_function_environment_output_is_optional_and_survives_the_cache_round_trip():
    assert parse_outputs(BASE).function_environment == {}
    out = parse_outputs(
        {**{k: {"value": v} for k, v in BASE.items()}, "function_environment": {"value": FIS}}
    )
    assert out.function_environment == FIS
    assert parse_outputs(out.to_json()).function_environment == FIS


@pytest.mark.parametrize("bad", [{"AWS_LAMBDA_EXEC_WRAPPER": 3}, {"1BAD": "x"}, ["x"], "x"])
def test_a_malformed_function_environment_output_is_exit_3(bad):
    with pytest.raises(EnvironmentFailure, match="output 'function_environment' must map") as exc:
        parse_outputs({**BASE, "function_environment": bad})
    assert exc.value.exit_code == 3
