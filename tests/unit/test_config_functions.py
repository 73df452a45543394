"""``[functions.KEY]`` tables (config/functions.py): what they give and every error (exit 2)."""

from pathlib import Path

import pytest

from stageflow import config as cfgmod
from stageflow.config.functions import lambda_function_name
from stageflow.errors import ConfigError, ExitCode

REPO = Path(__file__).resolve().parents[2]
ORDERS = REPO / "tests/fixtures/services/orders/stageflow.toml"
HEAD = '[service]\nname = "svc"\n'
API = HEAD + '[functions.api]\nhandler = "a.h"\n'


def load_text(tmp_path, text: str):
    p = tmp_path / "stageflow.toml"
    p.write_text(text)
    return cfgmod.load(p)


def test_the_orders_fixture_has_two_functions_in_file_order():
    cfg = cfgmod.load(ORDERS)
    assert cfg.multi_function
    api, worker = cfg.functions
    assert (api.key, api.handler, api.memory_mb, api.timeout_s) == ("api", "orders.api.handler", 256, 10)
    assert dict(api.environment) == {"GREETING": "hello from orders"}
    assert api.smoke.event_path == "events/api-health.json"
    assert (worker.key, worker.memory_mb, dict(worker.environment)) == ("worker", 512, {"BATCH_SIZE": "10"})
    assert worker.smoke.expect == {"accepted": 1, "rejected": 0}


def test_a_function_without_memory_or_timeout_takes_the_environments(tmp_path):
    cfg = load_text(tmp_path, API + "")
    (fn,) = cfg.functions
    assert (fn.key, fn.memory_mb, fn.timeout_s, dict(fn.environment)) == ("api", None, None, {})
    assert cfg.multi_function


def test_the_sample_keeps_one_function_named_after_the_service():
    cfg = cfgmod.load(REPO / "stageflow.toml")
    assert not cfg.multi_function
    assert [f.key for f in cfg.functions] == [cfg.service.name]


def test_function_names():
    assert lambda_function_name("orders", "api", "dev") == "orders-api-dev"
    assert lambda_function_name("orders", "orders", "dev") == "orders-dev"


@pytest.mark.parametrize(
    "body, key, reason",
    [
        (
            '[service]\nname = "svc"\nhandler = "a.h"\n[functions.api]\nhandler = "a.h"\n',
            "service.handler",
            "not both",
        ),
        (
            HEAD + 'smoke = { expect = { a = 1 } }\n[functions.api]\nhandler = "a.h"\n',
            "service.smoke",
            "not both",
        ),
        (HEAD + "[functions.api]\nmemory_mb = 256\n", "functions.api.handler", "is required"),
        (HEAD + '[functions.api]\nhandler = ""\n', "functions.api.handler", "is required"),
        (HEAD + "[functions.api]\nhandler = 3\n", "functions.api.handler", "must be str"),
        (HEAD + '[functions.Api]\nhandler = "a.h"\n', "functions.Api", "lowercase"),
        (HEAD + '[functions.1api]\nhandler = "a.h"\n', "functions.1api", "lowercase"),
        (HEAD + f'[functions.{"a" * 32}]\nhandler = "a.h"\n', f"functions.{'a' * 32}", "lowercase"),
        (API + "colour = 1\n", "functions.api.colour", "unknown key"),
        (API + "memory_mb = 64\n", "functions.api.memory_mb", "at least 128"),
        (
            API + "memory_mb = 20000\n",
            "functions.api.memory_mb",
            "at most 10240",
        ),
        (API + "timeout_s = 0\n", "functions.api.timeout_s", "at least 1"),
        (API + "timeout_s = 901\n", "functions.api.timeout_s", "at most 900"),
        (API + "timeout_s = 1.5\n", "functions.api.timeout_s", "must be int"),
        (HEAD + "[functions]\napi = 3\n", "functions.api", "must be a table"),
        ("functions = 3\n" + HEAD, "functions", "must be a table"),
        (
            API + '[functions.api.environment]\n"9X" = "1"\n',
            "functions.api.environment.9X",
            "names are a letter",
        ),
        (
            API + '[functions.api.environment]\nAWS_REGION = "x"\n',
            "functions.api.environment.AWS_REGION",
            "reserved by AWS Lambda",
        ),
        (
            API + '[functions.api.environment]\nSERVICE_NAME = "x"\n',
            "functions.api.environment.SERVICE_NAME",
            "set by the service module",
        ),
        (
            API + "[functions.api.environment]\nN = 3\n",
            "functions.api.environment.N",
            "names are a letter",
        ),
        (
            API + "[functions.api.environment]\nNN = 3\n",
            "functions.api.environment.NN",
            "must be a string",
        ),
        (
            HEAD
            + '[functions.api]\nhandler = "a.h"\n[functions.api.environment]\nTOKEN = "x"\n'
            + '[environments.dev.secrets]\nTOKEN = "ssm:/svc/token"\n',
            "functions.api.environment.TOKEN",
            "either plain or secret",
        ),
        (
            API + 'smoke = { event = "missing.json" }\n',
            "functions.api.smoke.event",
            "no such file",
        ),
        (
            API + "smoke = { colour = 1 }\n",
            "functions.api.smoke.colour",
            "unknown key",
        ),
        (HEAD + '[functions.rollback]\nhandler = "a.h"\n', "functions.rollback", "is reserved"),
        (HEAD + '[functions.v2]\nhandler = "a.h"\n', "functions.v2", "is reserved"),
    ],
)
def test_function_table_errors(tmp_path, body, key, reason):
    with pytest.raises(ConfigError) as ei:
        load_text(tmp_path, body)
    assert ei.value.key == key, str(ei.value)
    assert reason in str(ei.value)
    assert ei.value.exit_code == ExitCode.USAGE


def test_the_4kb_limit_counts_the_environments_variables_merged(tmp_path):
    half = "x" * 2100
    ok = HEAD + f'[functions.api]\nhandler = "a.h"\n[functions.api.environment]\nBIG = "{half}"\n'
    load_text(tmp_path, ok)  # alone, 2103 bytes
    body = ok + f'[environments.staging.environment]\nOTHER = "{half}"\n'
    with pytest.raises(ConfigError) as ei:
        load_text(tmp_path, body)
    assert ei.value.key == "functions.api.environment"
    assert "with environments.staging.environment" in str(ei.value)
    # the function's value wins over the environment's: the same name is counted once
    same = ok + f'[environments.staging.environment]\nBIG = "{half}"\n'
    load_text(tmp_path, same)


def test_lambdas_64_character_name_limit_in_every_environment(tmp_path):
    service = "s" * 30
    key = "f" * 28  # s*30-f*28-dev = 63 characters: fits in dev
    body = f'[service]\nname = "{service}"\n[functions.{key}]\nhandler = "a.h"\n'
    with pytest.raises(ConfigError) as ei:
        load_text(tmp_path, body)  # ...-staging is 67
    assert ei.value.key == f"functions.{key}"
    assert "in staging has 67 characters" in str(ei.value)
    load_text(tmp_path, body.replace(key, "f" * 24))  # -staging: 63
