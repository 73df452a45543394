import json

from stageflow.cli import hoist_global_flags, main
from stageflow.errors import ExitCode


def test_help_lists_commands_and_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes:" in out
    for code in ExitCode:
        assert f"{int(code):>3}  " in out
    assert "local" in out and "config" in out


def test_every_command_has_help(capsys):
    from stageflow.cli import cli

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            yield [*prefix, name]
            if hasattr(cmd, "commands"):
                yield from walk(cmd, [*prefix, name])

    for path in walk(cli, []):
        assert main([*path, "--help"]) == 0, path
        assert "Usage:" in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "stageflow, version" in capsys.readouterr().out


def test_config_error_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "stageflow.toml"
    bad.write_text('[service]\nname = "svc"\n[environments.prod.canary]\nsteps = [{weight = 101}]\n')
    assert main(["--config", str(bad), "config"]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("stageflow: error: ") and "environments.prod.canary.steps[0].weight" in err


def test_config_shows_every_function_with_its_handler(capsys):
    """A service of several functions sees each one (handler, sizes) in text and --json: the default
    `[service] handler` of a service that has `[functions.*]` is not what runs."""
    import json

    from tests.conftest import REPO

    orders = str(REPO / "tests/fixtures/services/orders/stageflow.toml")
    assert main(["--config", orders, "config"]) == 0
    out = capsys.readouterr().out
    assert "python3.12 on x86_64" in out
    assert "function api: orders.api.handler 256 MB 10 s" in out
    assert "function worker: orders.worker.handler" in out
    assert main(["--config", orders, "--json", "config"]) == 0
    functions = json.loads(capsys.readouterr().out)["functions"]
    assert sorted(functions) == ["api", "worker"]
    assert functions["worker"]["handler"] == "orders.worker.handler"


def test_unknown_command_is_usage_error(capsys):
    assert main(["frobnicate"]) == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("stageflow: error: ")


def test_config_json(capsys):
    assert main(["config", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["environments"]["prod"]["memory_mb"] == 512


def test_global_flags_anywhere_before_double_dash():
    assert hoist_global_flags(["local", "status", "--json"]) == ["--json", "local", "status"]
    assert hoist_global_flags(["secrets", "exec", "dev", "--", "cmd", "--json"]) == [
        "secrets",
        "exec",
        "dev",
        "--",
        "cmd",
        "--json",
    ]
