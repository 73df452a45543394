"""Issue 24 item 5 (findings 5 and 10): bad input is refused with exit 2 and a one-line error naming
what is wrong, before anything runs; what is printed cannot drive the terminal; --json is JSON."""

import io
import json

import pytest

from stageflow.cli import main
from stageflow.errors import ExitCode, UsageError

# every float key the config reads (config/parse.py), with the table it lives in
FLOAT_KEYS = [
    ("environments.dev.gates", "alpha"),
    ("environments.dev.gates", "interim_alpha"),
    ("environments.dev.gates", "recent_alpha"),
    ("environments.dev.gates", "max_error_rate"),
    ("environments.dev.gates", "max_p95_ms"),
    ("environments.dev.gates", "max_p99_ms"),
    ("environments.dev.gates", "relative_margin"),
    ("environments.dev.gates", "error_margin"),
    ("environments.dev.gates", "max_throughput_drop"),
    ("environments.dev.canary", "post_promotion_minutes"),
    ("environments.dev.approvals", "timeout_minutes"),
    ("environments.dev.tests", "spawn_rate"),
    ("tests", "coverage_floor"),
]


def _write(tmp_path, table: str, key: str, value: str):
    p = tmp_path / "stageflow.toml"
    p.write_text(f'[service]\nname = "svc"\n[{table}]\n{key} = {value}\n')
    return p


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
@pytest.mark.parametrize(("table", "key"), FLOAT_KEYS)
def test_non_finite_config_numbers_exit_2_naming_the_key(tmp_path, capsys, table, key, value):
    cfg = _write(tmp_path, table, key, value)
    assert main(["--config", str(cfg), "--json", "config"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and f"{table}.{key}" in err and "finite" in err, err
    assert captured.out == ""


@pytest.mark.parametrize("key", ["bake_minutes", "max_error_rate", "max_p95_ms"])
def test_non_finite_canary_step_numbers_exit_2(tmp_path, capsys, key):
    p = tmp_path / "stageflow.toml"
    p.write_text(
        f'[service]\nname = "svc"\n[environments.dev.canary]\nsteps = [{{weight = 10, {key} = nan}}]\n'
    )
    assert main(["--config", str(p), "config"]) == ExitCode.USAGE
    assert key in capsys.readouterr().err


def test_json_output_is_valid_json_even_with_non_finite_numbers():
    from stageflow.report import Reporter

    out = io.StringIO()
    Reporter(json_mode=True, out=out, err=io.StringIO()).result(
        None, {"p95": float("nan"), "n": [1.0, float("inf")], "ok": 1}
    )
    text = out.getvalue()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"n": [1.0, None], "ok": 1, "p95": None}


def test_json_config_output_is_strict_json(tmp_path, capsys):
    p = tmp_path / "stageflow.toml"
    p.write_text('[service]\nname = "svc"\n')
    assert main(["--config", str(p), "--json", "config"]) == 0
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))


def test_printed_names_are_escaped():
    from stageflow.report import Reporter

    err = io.StringIO()
    Reporter(err=err, out=io.StringIO()).info(
        "canary", "dev\x1b[2J", "name \x1b]0;pwned\x07 ok\r\nnext\tline"
    )
    text = err.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b[2J" in text and "next\tline" in text


def test_error_lines_are_escaped(tmp_path, capsys):
    p = tmp_path / "stageflow.toml"
    p.write_text('[service]\nname = "svc"\n[environments."de\x1b[31mv"]\n')
    main(["--config", str(p), "config"])
    assert "\x1b" not in capsys.readouterr().err


def test_aws_timeouts_from_the_environment_must_be_finite():
    from stageflow.aws import RetryPolicy

    for raw in ("nan", "inf"):
        with pytest.raises(UsageError):
            RetryPolicy.from_env({"STAGEFLOW_AWS_READ_TIMEOUT": raw})


# --- scenario files (finding 10) ----------------------------------------------------------------------


def test_a_scenario_that_is_not_utf8_is_exit_2(tmp_path):
    from stageflow.local.simulator import ScenarioError, load_scenario

    p = tmp_path / "latin1.json"
    p.write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    assert exc.value.exit_code == ExitCode.USAGE and "not UTF-8" in exc.value.one_line()


def test_a_scenario_too_large_or_with_a_huge_or_unprintable_name_is_exit_2(tmp_path):
    from stageflow.local.simulator import MAX_SCENARIO_BYTES, ScenarioError, load_scenario

    big = tmp_path / "big.json"
    big.write_text(json.dumps({"name": "x" * (MAX_SCENARIO_BYTES + 1)}))
    with pytest.raises(ScenarioError, match="larger than"):
        load_scenario(big)
    base = {
        "seed": 1,
        "traffic_per_minute": 60,
        "stable": {"error_rate": 0.01, "latency_ms": {"median": 100, "p95": 200}},
        "canary": {"error_rate": 0.01, "latency_ms": {"median": 100, "p95": 200}},
    }
    for name in ("n" * 600, "red\x1b[31m", "line\nbreak"):
        p = tmp_path / "named.json"
        p.write_text(json.dumps({**base, "name": name}))
        with pytest.raises(ScenarioError) as exc:
            load_scenario(p)
        assert exc.value.exit_code == ExitCode.USAGE and "name" in exc.value.one_line()
    p.write_text(json.dumps({**base, "name": "fine"}))
    assert load_scenario(p).name == "fine"


# --- output paths are checked before anything runs (finding 10) -----------------------------------------


@pytest.mark.parametrize("where", ["/proc/x.html", "/nonexistent-dir/x.html", "DIR"])
def test_unwritable_output_paths_are_refused(tmp_path, where):
    from stageflow.commands.dora import writable_path

    path = tmp_path if where == "DIR" else __import__("pathlib").Path(where)
    with pytest.raises(UsageError) as exc:
        writable_path(path)
    assert exc.value.exit_code == ExitCode.USAGE
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind
    assert writable_path(tmp_path / "ok.html") == tmp_path / "ok.html" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv", [["dora", "dev", "--png", "/proc/x.png"], ["report", "--env", "dev", "--html", "/proc/x.html"]]
)
def test_commands_refuse_an_unwritable_output_before_reading_anything(capsys, monkeypatch, argv):
    import stageflow.factory

    def no_env(*a, **k):
        raise AssertionError("nothing may be read before the output path is checked")

    monkeypatch.setattr(stageflow.factory.Factory, "environment", no_env)
    assert main(argv) == ExitCode.USAGE
    assert "cannot write /proc/x" in capsys.readouterr().err
