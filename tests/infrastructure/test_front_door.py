"""The HTTP front door (modules/front_door): a REST API stage per environment in front of the live
alias, with the design's throttling and caching (REQUIREMENTS.md: 1,000 / 5,000 / 10,000 req/s; cache
off / 5 min / 15 min), its alarms in the canary's gate, and its URL as the root's ``url`` output."""

from __future__ import annotations

import pytest

from tests.infrastructure.hcl import ENVIRONMENTS, INFRA, REPO, attr, blocks, load_dir

MODULE = INFRA / "modules" / "front_door"
# the design's figures; burst: 2x the rate, capped by AWS's account default burst (5,000)
DESIGN = {
    "dev": {"rate": 1000, "burst": 2000, "ttl": 0},
    "staging": {"rate": 5000, "burst": 5000, "ttl": 300},
    "prod": {"rate": 10000, "burst": 5000, "ttl": 900},
}


@pytest.fixture(scope="module")
def module():
    return load_dir(MODULE)


@pytest.fixture(params=ENVIRONMENTS)
def env(request):
    return request.param


def test_stageflow_toml_gives_each_environment_the_designs_throttling_and_cache(env):
    from stageflow.config import load
    from stageflow.terraform.variables import declared_variables, service_variables

    root = INFRA / "environments" / env
    values = service_variables(load(REPO / "stageflow.toml"), env, root)
    want = DESIGN[env]
    assert values["api_throttle_rate_limit"] == want["rate"]
    assert values["api_throttle_burst_limit"] == want["burst"]
    assert values["api_cache_ttl_seconds"] == want["ttl"]
    assert {"api_throttle_rate_limit", "api_throttle_burst_limit", "api_cache_ttl_seconds"} <= (
        declared_variables(root)
    )


def test_root_calls_the_front_door_with_those_values_and_outputs_its_url(env):
    cfg = load_dir(INFRA / "environments" / env)
    door = cfg.modules["front_door"]
    assert attr(door, "source") == "../../modules/front_door"
    wiring = {
        "throttle_rate_limit": "var.api_throttle_rate_limit",
        "throttle_burst_limit": "var.api_throttle_burst_limit",
        "cache_ttl_seconds": "var.api_cache_ttl_seconds",
        "stage_name": "var.api_version_stage",
        "alias_name": "module.service.alias_name",
        "topic_arn": "module.service.topic_arn",
    }
    for argument, expression in wiring.items():
        assert attr(door, argument) == f"${{{expression}}}", argument
    assert attr(cfg.outputs["url"], "value") == "${module.front_door.url}"
    assert "module.front_door.alarm_names" in attr(cfg.outputs["alarm_names"], "value")
    service = cfg.modules["service"]
    assert attr(service, "data_table_names") == "${module.resources.table_names}"


def test_stage_throttles_every_method_and_caches_only_get_for_the_ttl(module):
    stage = module.resource("aws_api_gateway_stage", "this")
    assert attr(stage, "cache_cluster_enabled") == "${local.caching}"
    assert "var.cache_ttl_seconds > 0" in module.locals["caching"]
    every = module.resource("aws_api_gateway_method_settings", "all")
    assert attr(every, "method_path") == "*/*"
    (settings,) = blocks(every, "settings")
    assert attr(settings, "throttling_rate_limit") == "${var.throttle_rate_limit}"
    assert attr(settings, "throttling_burst_limit") == "${var.throttle_burst_limit}"
    assert attr(settings, "caching_enabled") is False
    get = module.resource("aws_api_gateway_method_settings", "get")
    assert "~1{proxy+}/GET" in attr(get, "for_each") and "local.caching" in attr(get, "for_each")
    (cached,) = blocks(get, "settings")
    assert attr(cached, "caching_enabled") is True
    assert attr(cached, "cache_ttl_in_seconds") == "${var.cache_ttl_seconds}"
    assert attr(cached, "cache_data_encrypted") is True


def test_every_request_goes_to_the_live_alias_through_a_proxy_integration(module):
    integration = module.resource("aws_api_gateway_integration", "this")
    assert attr(integration, "type") == "AWS_PROXY"
    assert attr(integration, "uri") == "${local.invoke_uri}"
    assert "${local.alias_arn}/invocations" in module.locals["invoke_uri"]
    permission = module.resource("aws_lambda_permission", "api")
    assert attr(permission, "qualifier") == "${var.alias_name}"


def test_alarms_are_the_designs_and_notify_the_topic(module):
    alarms = module.of_type("aws_cloudwatch_metric_alarm")
    assert attr(alarms["client_errors"], "metric_name") == "4XXError"
    assert attr(alarms["server_errors"], "metric_name") == "5XXError"
    assert attr(alarms["latency_p95"], "metric_name") == "Latency"
    assert attr(module.variables["client_errors_threshold"], "default") == 5
    assert attr(module.variables["server_errors_threshold"], "default") == 3
    assert attr(module.variables["latency_p95_threshold_ms"], "default") == 5000
    for a in alarms.values():
        assert attr(a, "alarm_actions") == ["${var.topic_arn}"]
        assert attr(a, "period") == 300
    names = attr(module.outputs["alarm_names"], "value")
    assert len(names) == 3
