"""``[service] smoke``: the event file and ``expect``, checked at load (exit 2 naming the key)."""

from pathlib import Path

import pytest

from stageflow import config as cfgmod
from stageflow.cli import main
from stageflow.errors import ConfigError, ExitCode
from stageflow.invokecheck import Smoke

REPO = Path(__file__).resolve().parents[2]


def load_smoke(tmp_path, smoke: str):
    p = tmp_path / "stageflow.toml"
    p.write_text(f'[service]\nname = "svc"\nsmoke = {smoke}\n')
    return cfgmod.load(p)


def test_no_smoke_invokes_with_an_empty_event_and_no_expectations(tmp_path):
    (tmp_path / "stageflow.toml").write_text('[service]\nname = "svc"\n')
    smoke = cfgmod.load(tmp_path / "stageflow.toml").service.smoke
    assert smoke == Smoke() and smoke.event(tmp_path) == b"{}" and not smoke.expect


def test_event_relative_to_the_root_and_nested_expect(tmp_path):
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "get.json").write_text('{"rawPath": "/health"}')
    cfg = load_smoke(
        tmp_path, '{ event = "events/get.json", expect = { statusCode = 200, body = { ok = true } } }'
    )
    assert cfg.service.smoke.event_path == "events/get.json"
    assert cfg.service.smoke.expect == {"statusCode": 200, "body": {"ok": True}}
    assert cfg.service.smoke.event(cfg.root) == b'{"rawPath": "/health"}'


def test_the_sample_service_checks_get_health():
    smoke = cfgmod.load(REPO / "stageflow.toml").service.smoke
    assert smoke.event_path == "app/tests/events/health.json"
    assert smoke.expect["statusCode"] == 200


@pytest.mark.parametrize(
    ("smoke", "key", "reason"),
    [
        ('{ event = "missing.json" }', "service.smoke.event", "missing.json: no such file"),
        ('{ event = "bad.json" }', "service.smoke.event", "bad.json: not a JSON file"),
        ("{ event = 3 }", "service.smoke.event", "must be str"),
        ('{ expect = "200" }', "service.smoke.expect", "must be a table"),
        ('{ events = "x.json" }', "service.smoke.events", "unknown key"),
        ('"events/get.json"', "service.smoke", "must be a table"),
    ],
)
def test_bad_smoke_is_exit_2_naming_the_key(tmp_path, smoke, key, reason):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError) as exc:
        load_smoke(tmp_path, smoke)
    assert exc.value.key == key and reason in exc.value.reason
    assert exc.value.exit_code == ExitCode.USAGE


def test_cli_config_with_a_missing_event_is_exit_2_one_line(tmp_path, capsys):
    (tmp_path / "stageflow.toml").write_text('[service]\nname = "svc"\nsmoke = { event = "nope.json" }\n')
    code = main(["--config", str(tmp_path / "stageflow.toml"), "config"])
    err = capsys.readouterr().err.strip()
    assert code == ExitCode.USAGE and err.count("\n") == 0
    assert "service.smoke.event: nope.json: no such file" in err
