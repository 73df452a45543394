from pathlib import Path

import pytest

from stageflow import config as cfgmod
from stageflow.errors import ConfigError, ExitCode, UnknownEnvironmentError

REPO = Path(__file__).resolve().parents[2]


def load_text(tmp_path, text: str):
    p = tmp_path / "stageflow.toml"
    p.write_text(text)
    return cfgmod.load(p)


def test_repository_config_has_the_design_defaults():
    cfg = cfgmod.load(REPO / "stageflow.toml")
    assert cfg.environment_names == ("dev", "staging", "prod")
    dev, staging, prod = (cfg.env(n) for n in ("dev", "staging", "prod"))
    assert (dev.memory_mb, dev.log_retention_days, dev.xray) == (256, 14, False)
    assert (staging.memory_mb, staging.log_retention_days) == (512, 30)
    assert (prod.memory_mb, prod.log_retention_days, prod.xray, prod.protected) == (512, 90, True, True)
    assert [(s.weight, s.bake_minutes) for s in prod.canary.steps] == [(10, 15), (50, 15), (100, 0)]
    assert prod.canary.post_promotion_minutes == 30
    assert prod.approvals.before_canary and prod.approvals.between_steps
    assert [s.approval for s in prod.canary.steps] == [True, True, False]
    assert not dev.approvals.before_canary and not any(s.approval for s in dev.canary.steps)
    assert prod.gates.max_error_rate == 0.01 and prod.gates.max_p95_ms == 5000


def test_minimal_file_gets_all_defaults(tmp_path):
    cfg = load_text(tmp_path, '[service]\nname = "svc"\n')
    assert cfg.env("prod").canary.steps[0].weight == 10
    assert cfg.env("dev").terraform.root == "infrastructure/environments/dev"
    assert cfg.env("prod").alias == "live"


def test_config_is_frozen(tmp_path):
    cfg = load_text(tmp_path, '[service]\nname = "svc"\n')
    with pytest.raises(AttributeError):
        cfg.env("dev").memory_mb = 1024  # type: ignore[misc]


@pytest.mark.parametrize(
    "body, key, reason",
    [
        ('[service]\nname = "svc"\ncolour = "red"\n', "service.colour", "unknown key"),
        (
            '[service]\nname = "svc"\n[environments.prod]\nmemroy_mb = 1\n',
            "environments.prod.memroy_mb",
            "unknown key",
        ),
        (
            '[service]\nname = "svc"\n[environments.prod.canary]\nsteps = [{weight = 150}]\n',
            "environments.prod.canary.steps[0].weight",
            "between 0 and 100",
        ),
        (
            '[service]\nname = "svc"\n[environments.prod.canary]\nsteps = [{weight = -5}]\n',
            "environments.prod.canary.steps[0].weight",
            "between 0 and 100",
        ),
        (
            '[service]\nname = "svc"\n[environments.dev.canary]\n'
            "steps = [{weight = 50}, {weight = 10}, {weight = 100}]\n",
            "environments.dev.canary.steps[1].weight",
            "steps must increase",
        ),
        (
            '[service]\nname = "svc"\n[environments.dev.canary]\nsteps = [{weight = 10}, {weight = 50}]\n',
            "environments.dev.canary.steps[1].weight",
            "last step must be 100",
        ),
        (
            '[service]\nname = "svc"\n[environments.dev.gates]\nmax_error_rate = 2\n',
            "environments.dev.gates.max_error_rate",
            "at most 1",
        ),
        (
            '[service]\nname = "svc"\n[environments.dev]\nmemory_mb = "lots"\n',
            "environments.dev.memory_mb",
            "must be int",
        ),
        (
            '[service]\nname = "svc"\n[environments.dev.secrets]\nDB = "vault:x"\n',
            "environments.dev.secrets.DB",
            "must be a reference",
        ),
        ('[service]\nname = "Bad Name"\n', "service.name", "is required"),
        ("[environments.dev]\n", "service", "is required"),
        ('[service]\nname = "svc"\n[environments.Prod]\n', "environments.Prod", "lowercase"),
    ],
)
def test_config_errors_name_file_key_and_reason(tmp_path, body, key, reason):
    with pytest.raises(ConfigError) as exc:
        load_text(tmp_path, body)
    err = exc.value
    assert err.exit_code == ExitCode.USAGE
    assert err.key == key
    assert reason in err.reason
    line = err.one_line()
    assert "\n" not in line and str(tmp_path / "stageflow.toml") in line and key in line


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_text(tmp_path, "[service\nname=")
    with pytest.raises(ConfigError, match="file not found"):
        cfgmod.load(tmp_path / "nope.toml")


def test_unknown_environment_lists_the_known_ones(tmp_path):
    cfg = load_text(tmp_path, '[service]\nname = "svc"\n')
    with pytest.raises(UnknownEnvironmentError) as exc:
        cfg.env("qa")
    assert exc.value.exit_code == ExitCode.USAGE
    assert "dev, staging, prod" in exc.value.one_line()


def test_extra_environment_and_secret_refs(tmp_path):
    cfg = load_text(
        tmp_path,
        '[service]\nname = "svc"\n[environments.qa]\nmemory_mb = 1024\n'
        '[environments.qa.secrets]\nDB_PASSWORD = "secretsmanager:svc/qa/database#password"\n'
        'API_HOST = "ssm:/svc/qa/api/host"\n',
    )
    qa = cfg.env("qa")
    assert qa.memory_mb == 1024
    assert dict(qa.secrets) == {
        "DB_PASSWORD": "secretsmanager:svc/qa/database#password",
        "API_HOST": "ssm:/svc/qa/api/host",
    }
    assert cfg.environment_names == ("dev", "staging", "prod", "qa")


def test_judge_knobs_defaults_and_validation(tmp_path):
    from stageflow.config import Gates, parse
    from stageflow.errors import ConfigError

    cfg = parse({"service": {"name": "svc"}}, tmp_path / "stageflow.toml")
    g = cfg.env("prod").gates
    assert (g.alpha, g.interim_alpha, g.relative_margin, g.error_margin, g.min_latency_minutes) == (
        Gates.alpha,
        Gates.interim_alpha,
        0.25,
        0.001,
        5,
    )
    cfg = parse(
        {
            "service": {"name": "svc"},
            "environments": {"dev": {"gates": {"alpha": 0.01, "min_latency_minutes": 3}}},
        },
        tmp_path / "stageflow.toml",
    )
    assert cfg.env("dev").gates.alpha == 0.01 and cfg.env("dev").gates.min_latency_minutes == 3
    for gates, key in (
        ({"alpha": 0.9}, "environments.dev.gates.alpha"),
        ({"interim_alpha": 0.01}, "environments.dev.gates.interim_alpha"),  # above alpha
        ({"relative_margin": "big"}, "environments.dev.gates.relative_margin"),
        ({"min_latency_minutes": 0}, "environments.dev.gates.min_latency_minutes"),
    ):
        with pytest.raises(ConfigError) as info:
            parse(
                {"service": {"name": "svc"}, "environments": {"dev": {"gates": gates}}}, tmp_path / "s.toml"
            )
        assert info.value.key == key


def test_service_architecture_defaults_to_x86_64_and_is_checked(tmp_path):
    from stageflow.config import parse

    assert parse({"service": {"name": "svc"}}, tmp_path / "s.toml").service.architecture == "x86_64"
    arm = parse({"service": {"name": "svc", "architecture": "arm64"}}, tmp_path / "s.toml")
    assert arm.service.architecture == "arm64"
    with pytest.raises(ConfigError) as info:
        parse({"service": {"name": "svc", "architecture": "aarch64"}}, tmp_path / "s.toml")
    assert info.value.key == "service.architecture" and info.value.exit_code == ExitCode.USAGE


def test_service_timeout_is_every_environments_default(tmp_path):
    cfg = load_text(
        tmp_path, '[service]\nname = "svc"\ntimeout_s = 45\n[environments.prod]\ntimeout_s = 60\n'
    )
    assert cfg.service.timeout_s == 45
    assert (cfg.env("dev").timeout_s, cfg.env("staging").timeout_s, cfg.env("prod").timeout_s) == (45, 45, 60)
    assert load_text(tmp_path, '[service]\nname = "svc"\n').env("dev").timeout_s == 30  # the module's
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, '[service]\nname = "svc"\ntimeout_s = 901\n')
    assert info.value.key == "service.timeout_s" and "at most 900" in info.value.reason


@pytest.mark.parametrize(
    "runtime, reason",
    [
        ("python3.14", "newer than the pinned AWS provider (hashicorp/aws 5.100.0)"),
        ("python3.9", "no longer accepted by AWS Lambda"),
        ("nodejs20.x", "not a Python Lambda runtime"),
    ],
)
def test_runtime_is_checked_at_load(tmp_path, runtime, reason):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, f'[service]\nname = "svc"\nruntime = "{runtime}"\n')
    assert info.value.key == "service.runtime" and info.value.exit_code == ExitCode.USAGE
    assert reason in info.value.one_line()
    assert (
        load_text(tmp_path, '[service]\nname = "svc"\nruntime = "python3.13"\n').service.runtime
        == "python3.13"
    )


def test_runtime_314_stops_deploy_before_anything_starts(tmp_path, capsys, monkeypatch):
    from stageflow import process
    from stageflow.cli import main

    def no_process(*args, **kwargs):
        raise AssertionError(f"nothing may run: {args}")

    monkeypatch.setattr(process, "run", no_process)
    monkeypatch.setattr(process, "spawn", no_process)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stageflow.toml").write_text('[service]\nname = "svc"\nruntime = "python3.14"\n')
    assert main(["--local", "deploy", "dev"]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("stageflow: error: ")
    assert "service.runtime" in err and "python3.14" in err and "hashicorp/aws 5.100.0" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stageflow.toml"]  # nothing built, no state


def test_plain_environment_variables(tmp_path):
    cfg = load_text(
        tmp_path,
        '[service]\nname = "svc"\n[environments.dev.environment]\nLOG_LEVEL = "debug"\nFEATURE_X = ""\n'
        '[environments.dev.secrets]\nDB_PASSWORD = "ssm:/svc/dev/db"\n',
    )
    assert dict(cfg.env("dev").environment) == {"LOG_LEVEL": "debug", "FEATURE_X": ""}
    assert dict(cfg.env("prod").environment) == {}
    with pytest.raises(TypeError):
        cfg.env("dev").environment["X"] = "1"  # type: ignore[index]


@pytest.mark.parametrize(
    "table, reason",
    [
        ('"9LIVES" = "x"', "names are a letter"),
        ('"A-B" = "x"', "names are a letter"),
        ('X = "x"', "names are a letter"),  # Lambda: two characters at least
        ("LOG_LEVEL = 3", 'must be a string, got int (quote it: LOG_LEVEL = "3")'),
        ("DEBUG = true", "must be a string, got boolean"),
        ('DB_PASSWORD = "plain"', "also in environments.dev.secrets"),
        ('ENVIRONMENT = "x"', "set by the service module"),
        ('AWS_REGION = "eu-west-1"', "reserved by AWS Lambda"),
        (f'BIG = "{"x" * 4100}"', "Lambda takes at most 4096"),
    ],
)
def test_plain_environment_variables_are_validated(tmp_path, table, reason):
    with pytest.raises(ConfigError) as info:
        load_text(
            tmp_path,
            '[service]\nname = "svc"\n[environments.dev.secrets]\nDB_PASSWORD = "ssm:/svc/dev/db"\n'
            f"[environments.dev.environment]\n{table}\n",
        )
    assert info.value.key.startswith("environments.dev.environment")
    assert info.value.exit_code == ExitCode.USAGE and reason in info.value.reason


def test_tests_requirements_default_none_and_paths_inside_the_service_source(tmp_path):
    from stageflow.config import parse

    assert parse({"service": {"name": "svc"}}, tmp_path / "s.toml").tests.requirements is None
    (tmp_path / "svc" / "req").mkdir(parents=True)
    (tmp_path / "svc" / "req" / "lock.txt").write_text("pytest\n")
    (tmp_path / "svc" / "dev.txt").write_text("boto3\n")
    files = ["req/lock.txt", "dev.txt"]
    data = {"service": {"name": "svc", "source": "svc"}, "tests": {"requirements": files}}
    assert parse(data, tmp_path / "s.toml").tests.requirements == ("req/lock.txt", "dev.txt")


@pytest.mark.parametrize(
    "value, reason",
    [
        ("requirements.txt", "must be a non-empty array of file names, got string"),
        ([], "must be a non-empty array"),
        ([""], "must be a non-empty array"),
        (["missing.txt"], "no such file: 'missing.txt'"),
        (["../outside.txt"], "must be a path inside service.source"),
        (["/etc/hosts"], "must be a path inside service.source"),
    ],
)
def test_tests_requirements_bad_values_are_exit_2_naming_the_key(tmp_path, value, reason):
    (tmp_path / "app").mkdir()
    (tmp_path / "outside.txt").write_text("pytest\n")
    p = tmp_path / "stageflow.toml"
    p.write_text('[service]\nname = "svc"\n')
    from stageflow.config import parse

    with pytest.raises(ConfigError) as info:
        parse({"service": {"name": "svc"}, "tests": {"requirements": value}}, p)
    assert info.value.key == "tests.requirements" and reason in info.value.one_line()
    assert info.value.exit_code == ExitCode.USAGE
