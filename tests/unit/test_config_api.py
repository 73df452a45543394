"""[environments.NAME.api] (the front door's throttling and cache) and [service] http_function."""

from __future__ import annotations

import pytest

from stageflow.errors import ConfigError, ExitCode
from tests.unit.test_config import load_text


def test_the_designs_throttling_and_caching_by_default(tmp_path):
    cfg = load_text(tmp_path, '[service]\nname = "svc"\n[environments.qa]\n')
    figures = {
        n: (e.api.rate_limit, e.api.burst_limit, e.api.cache_ttl_s) for n, e in cfg.environments.items()
    }
    assert figures == {
        "dev": (1000, 2000, 0),
        "staging": (5000, 5000, 300),
        "prod": (10000, 5000, 900),
        "qa": (1000, 2000, 0),
    }


def test_an_environment_overrides_them(tmp_path):
    cfg = load_text(
        tmp_path, '[service]\nname = "svc"\n[environments.dev.api]\nrate_limit = 50\ncache_ttl_s = 60\n'
    )
    assert (
        cfg.env("dev").api.rate_limit,
        cfg.env("dev").api.burst_limit,
        cfg.env("dev").api.cache_ttl_s,
    ) == (
        50,
        2000,
        60,
    )


@pytest.mark.parametrize(
    "body, key, reason",
    [
        ("rate_limit = 0", "environments.dev.api.rate_limit", "at least 1"),
        ("rate_limit = 10001", "environments.dev.api.rate_limit", "at most 10000"),
        ("rate_limit = nan", "environments.dev.api.rate_limit", "must be int"),
        ("rate_limit = inf", "environments.dev.api.rate_limit", "must be int"),
        ("rate_limit = 1.5", "environments.dev.api.rate_limit", "must be int"),
        ("burst_limit = 5001", "environments.dev.api.burst_limit", "at most 5000"),
        ("cache_ttl_s = -1", "environments.dev.api.cache_ttl_s", "at least 0"),
        ("cache_ttl_s = 3601", "environments.dev.api.cache_ttl_s", "at most 3600"),
        ('cache_ttl_s = "5m"', "environments.dev.api.cache_ttl_s", "must be int"),
        ("quota = 5", "environments.dev.api.quota", "unknown key"),
    ],
)
def test_bad_values_are_exit_2_naming_the_key(tmp_path, body, key, reason):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, f'[service]\nname = "svc"\n[environments.dev.api]\n{body}\n')
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.key.startswith(key) and reason in info.value.reason


def test_http_function_names_a_function_of_the_service(tmp_path):
    assert load_text(tmp_path, '[service]\nname = "svc"\n').service.http_function is None
    assert (
        load_text(tmp_path, '[service]\nname = "svc"\nhttp_function = "svc"\n').service.http_function == "svc"
    )
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, '[service]\nname = "svc"\nhttp_function = "orders"\n')
    assert info.value.key == "service.http_function" and "'orders' is not a function of the service" in str(
        info.value.reason
    )
