"""`stageflow secrets ENV ACTION` against the emulator, as a real child process.

Every test searches what the CLI printed (and, where files are involved, every file left under the
project and the state directory) for the secret values in raw, base64, URL and JSON forms.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess
import sys
import urllib.parse
import zipfile

import pytest

from tests.conftest import require
from tests.helpers.leakscan import scan_for_values

pytestmark = pytest.mark.emulator

# Values chosen to have characters that base64, URL and JSON encode differently.
DB_PASSWORD = 'pa55-"wörd"/+?&=\\ end'
API_TOKEN = "tok_4f9a8b7c6d5e4f3a2b1c"
API_HOST = "db-primary.internal.example"
PENDING_PASSWORD = "rotated-pending-Zq81!x"
PENDING_TOKEN = "tok_pending_0e1d2c3b4a59"
VALUES = [DB_PASSWORD, API_TOKEN, API_HOST, PENDING_PASSWORD, PENDING_TOKEN]

SECRETS_TOML = """
[environments.dev.secrets]
DB_PASSWORD = "secretsmanager:sample-api/dev/database#password"
API_TOKEN = "secretsmanager:sample-api/dev/api-token"
API_HOST = "ssm:/sample-api/dev/api/host"
"""


def _add_secrets_table(project, text=SECRETS_TOML):
    cfg = project / "stageflow.toml"
    cfg.write_text(cfg.read_text() + text)


@pytest.fixture(scope="module")
def seeded(emulator):
    """The emulator, reset once for this module (a reset costs ~1.5 s), with the dev secrets.

    Tests here never change these three; a test that needs other state creates it under its own names.
    """
    import urllib.request

    from stageflow.aws import AwsClients, AwsTarget

    req = urllib.request.Request(f"{emulator.endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    aws = AwsClients(AwsTarget("us-east-1", True, emulator.endpoint))
    sm = aws.client("secretsmanager")
    sm.create_secret(
        Name="sample-api/dev/database",
        SecretString=json.dumps({"username": "app", "password": DB_PASSWORD}),
    )
    sm.create_secret(Name="sample-api/dev/api-token", SecretString=API_TOKEN)
    aws.client("ssm").put_parameter(Name="/sample-api/dev/api/host", Value=API_HOST, Type="SecureString")
    return aws


@pytest.fixture
def setup(project, seeded):
    """A project whose dev environment has three secrets, all present in the emulator."""
    _add_secrets_table(project)
    return project


@pytest.fixture
def run(cli, emulator_state):
    """Run `stageflow --local ...` in the project against the test emulator; collect all output."""
    outputs: list[subprocess.CompletedProcess] = []

    def _run(project, *args, **kw):
        env = {"STAGEFLOW_STATE_DIR": str(emulator_state), **kw.pop("env", {})}
        proc = cli("--local", *args, cwd=project, env=env, **kw)
        outputs.append(proc)
        return proc

    _run.outputs = outputs
    return _run


def _assert_no_leaks(run, paths, exclude=(), extra=None):
    texts = dict(extra or {})
    for i, proc in enumerate(run.outputs):
        texts[f"run{i}:{' '.join(proc.args[3:6])}:stdout"] = proc.stdout
        texts[f"run{i}:{' '.join(proc.args[3:6])}:stderr"] = proc.stderr
    hits = scan_for_values(paths, texts, VALUES, exclude=exclude)
    assert not hits, [str(h) for h in hits]


def _one_error_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("stageflow: error: "), proc.stderr
    return lines[0]


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


# -- validate ---------------------------------------------------------------------------------------
def test_validate_lists_every_reference_without_values(setup, run, emulator_state):
    proc = run(setup, "secrets", "dev", "validate")
    assert proc.returncode == 0, proc.stderr
    assert "all 3 references resolve (AWSCURRENT)" in proc.stdout
    for name in ("DB_PASSWORD", "API_TOKEN", "API_HOST"):
        assert name in proc.stdout
    js = run(setup, "secrets", "dev", "validate", "--json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["ok"] is True and sorted(data["names"]) == ["API_HOST", "API_TOKEN", "DB_PASSWORD"]
    _assert_no_leaks(run, [setup, emulator_state])


def test_validate_reports_all_missing_in_one_line_exit_2(setup, run, emulator_state):
    _add_secrets_table(
        setup,
        'NOPE_ONE = "secretsmanager:sample-api/dev/absent"\n'
        'NOPE_TWO = "ssm:/sample-api/dev/absent"\n'
        'NOPE_KEY = "secretsmanager:sample-api/dev/database#no-such-key"\n',
    )
    before = _files(setup)
    proc = run(setup, "secrets", "dev", "validate")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "3 of 6 secrets failed" in line
    for name in ("NOPE_ONE", "NOPE_TWO", "NOPE_KEY"):
        assert name in line
    assert "DB_PASSWORD" not in line
    assert proc.stdout == ""
    assert _files(setup) == before
    _assert_no_leaks(run, [setup, emulator_state])


def test_malformed_reference_caught_by_config_exit_2(setup, run):
    _add_secrets_table(setup, 'BROKEN = "vault:sample-api/dev/x"\n')
    before = _files(setup)
    proc = run(setup, "secrets", "dev", "env-file", str(setup / "out.env"))
    assert proc.returncode == 2
    assert "environments.dev.secrets.BROKEN" in _one_error_line(proc)
    assert _files(setup) == before


def test_malformed_reference_caught_at_parse_exit_2(setup, run):
    # A known source ('ssm:') but not a parameter path: the one reference grammar, run when the
    # configuration is loaded, names the entry and the reason.
    _add_secrets_table(setup, 'BROKEN = "ssm:relative/path"\n')
    before = _files(setup)
    proc = run(setup, "secrets", "dev", "env-file", str(setup / "out.env"))
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "BROKEN" in line and "malformed reference" in line
    assert _files(setup) == before


STAGING_TOML = """
[environments.staging.secrets]
DB_PASSWORD = "secretsmanager:sample-api/staging/database#password"
API_TOKEN = "secretsmanager:sample-api/staging/api-token"
API_HOST = "ssm:/sample-api/dev/api/host"
"""


def test_version_stage_selects_pending(setup, run, seeded, emulator_state):
    _add_secrets_table(setup, STAGING_TOML)
    sm = seeded.client("secretsmanager")
    sm.create_secret(Name="sample-api/staging/database", SecretString=json.dumps({"password": DB_PASSWORD}))
    sm.create_secret(Name="sample-api/staging/api-token", SecretString=API_TOKEN)
    sm.put_secret_value(
        SecretId="sample-api/staging/database",
        SecretString=json.dumps({"password": PENDING_PASSWORD}),
        VersionStages=["AWSPENDING"],
    )
    only_current = run(setup, "secrets", "staging", "validate", "--version-stage", "AWSPENDING")
    assert only_current.returncode == 2
    assert "API_TOKEN" in _one_error_line(only_current)
    assert "not found at version stage AWSPENDING" in only_current.stderr
    sm.put_secret_value(
        SecretId="sample-api/staging/api-token", SecretString=PENDING_TOKEN, VersionStages=["AWSPENDING"]
    )
    check = "import os,sys; ok = os.environ['DB_PASSWORD'] == sys.argv[1]; print('match' if ok else 'differ')"
    cur = run(setup, "secrets", "staging", "exec", "--", sys.executable, "-c", check, DB_PASSWORD)
    assert cur.returncode == 0, cur.stderr
    assert cur.stdout.strip() == "match"
    pend = run(
        setup,
        "secrets",
        "staging",
        "exec",
        "--version-stage",
        "AWSPENDING",
        "--",
        sys.executable,
        "-c",
        check,
        PENDING_PASSWORD,
    )
    assert pend.returncode == 0, pend.stderr
    assert pend.stdout.strip() == "match"
    assert "parameters were read at their latest" in pend.stderr
    bad = run(setup, "secrets", "staging", "validate", "--version-stage", "NO_SUCH_STAGE")
    assert bad.returncode == 2
    assert "DB_PASSWORD" in _one_error_line(bad)
    # the argv of the checks above carried values on purpose; scan only what the tool printed
    assert not scan_for_values([], {"out": cur.stdout + pend.stdout, "err": cur.stderr + pend.stderr}, VALUES)
    assert not scan_for_values([setup, emulator_state], {}, VALUES)


# -- exec -------------------------------------------------------------------------------------------
def test_exec_child_gets_values_and_exit_code(setup, run):
    check = (
        "import os,sys\n"
        "exp = {'DB_PASSWORD': sys.argv[1], 'API_TOKEN': sys.argv[2], 'API_HOST': sys.argv[3]}\n"
        "bad = [k for k, v in exp.items() if os.environ.get(k) != v]\n"
        "print('ok' if not bad else 'bad ' + ','.join(bad)); sys.exit(7)\n"
    )
    proc = run(
        setup, "secrets", "dev", "exec", "--", sys.executable, "-c", check, DB_PASSWORD, API_TOKEN, API_HOST
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_exec_streamed_child_output_is_masked(setup, run, emulator_state):
    # The child prints the values itself, in every common encoding, on stdout and stderr.
    leak = (
        "import base64, json, os, sys, urllib.parse\n"
        "for n in ('DB_PASSWORD', 'API_TOKEN', 'API_HOST'):\n"
        "    v = os.environ[n]\n"
        "    print(n, 'raw', v, flush=True)\n"
        "    print(n, 'b64', base64.b64encode(v.encode()).decode(), flush=True)\n"
        "    print(n, 'basic', base64.b64encode(('user:' + v).encode()).decode(), flush=True)\n"
        "    print(n, 'url', urllib.parse.quote(v, safe=''), flush=True)\n"
        "    print(n, 'json', json.dumps({'v': v}), flush=True)\n"
        "    print(n, 'stderr', v, file=sys.stderr, flush=True)\n"
    )
    proc = run(setup, "secrets", "dev", "exec", "--", sys.executable, "-c", leak)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("***") >= 15
    assert "DB_PASSWORD raw ***" in proc.stdout
    assert "API_HOST stderr ***" in proc.stderr
    _assert_no_leaks(run, [setup, emulator_state])
    # the Basic-auth form: base64 of 'user:' + value must not keep the value's inner run
    for v in VALUES[:3]:
        inner = base64.b64encode(("user:" + v).encode()).decode()[8:-4]
        assert inner not in proc.stdout


def test_exec_pristine_gives_only_the_secrets(setup, run):
    env_bin = "/usr/bin/env"
    require(os.path.exists(env_bin), "coreutils env")
    proc = run(setup, "secrets", "dev", "exec", "--pristine", "--", "env")
    assert proc.returncode == 0, proc.stderr
    names = sorted(line.split("=", 1)[0] for line in proc.stdout.splitlines() if line)
    assert names == ["API_HOST", "API_TOKEN", "DB_PASSWORD"]
    assert all(line.endswith("=***") for line in proc.stdout.splitlines() if line)
    assert "pristine" in proc.stderr


def test_exec_tf_vars_and_local_aws_settings(setup, run):
    show = (
        "import os; print(sorted(k for k in os.environ if k.startswith('TF_VAR_')));"
        "print(os.environ.get('AWS_ENDPOINT_URL', '').startswith('http://127.0.0.1:'))"
    )
    proc = run(setup, "secrets", "dev", "exec", "--tf-vars", "--", sys.executable, "-c", show)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    assert first == "['TF_VAR_api_host', 'TF_VAR_api_token', 'TF_VAR_db_password']"
    assert second == "True"


def test_exec_missing_secret_runs_nothing(setup, run, tmp_path):
    _add_secrets_table(setup, 'NOPE = "ssm:/sample-api/dev/absent"\n')
    marker = tmp_path / "ran"
    proc = run(setup, "secrets", "dev", "exec", "--", "touch", str(marker))
    assert proc.returncode == 2
    assert "NOPE" in _one_error_line(proc)
    assert not marker.exists()


# -- env-file ---------------------------------------------------------------------------------------
def _parse_env_file(text):
    """Read the dialect format_env_line writes (bare, '...' literal, "..." with escapes)."""
    out = {}
    for line in text.splitlines():
        name, value = line.split("=", 1)
        if value.startswith("'"):
            value = value[1:-1]
        elif value.startswith('"'):
            value = json.loads(value.replace("\\$", "$"))
        out[name] = value
    return out


def test_env_file_written_0600_atomically(setup, run, emulator_state):
    target = setup / ".env.dev"
    proc = run(setup, "secrets", "dev", "env-file", str(target))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _parse_env_file(target.read_text()) == {
        "DB_PASSWORD": DB_PASSWORD,
        "API_TOKEN": API_TOKEN,
        "API_HOST": API_HOST,
    }
    assert not [p for p in setup.iterdir() if p.name.endswith(".tmp")]
    # rewriting our own 0600 file is fine
    again = run(setup, "secrets", "dev", "env-file", str(target))
    assert again.returncode == 0, again.stderr
    _assert_no_leaks(run, [setup, emulator_state], exclude=[target])


def test_env_file_refuses_wider_permissions(setup, run):
    target = setup / ".env.dev"
    target.write_text("OLD=1\n")
    target.chmod(0o644)
    proc = run(setup, "secrets", "dev", "env-file", str(target))
    assert proc.returncode == 2
    assert "0644" in _one_error_line(proc)
    assert target.read_text() == "OLD=1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_env_file_refuses_git_tracked_file(setup, run):
    require(bool(__import__("shutil").which("git")), "git")
    subprocess.run(["git", "init", "-q", str(setup)], check=True)
    target = setup / "committed.env"
    target.write_text("OLD=1\n")
    target.chmod(0o600)
    subprocess.run(["git", "-C", str(setup), "add", "committed.env"], check=True)
    proc = run(setup, "secrets", "dev", "env-file", str(target))
    assert proc.returncode == 2
    assert "tracked by git" in _one_error_line(proc)
    assert target.read_text() == "OLD=1\n"
    # an untracked, unignored path in the same repo is written, with a warning
    fresh = setup / "fresh.env"
    ok = run(setup, "secrets", "dev", "env-file", str(fresh))
    assert ok.returncode == 0, ok.stderr
    assert "not ignored by git" in ok.stderr


def test_env_file_missing_secret_writes_nothing(setup, run):
    _add_secrets_table(setup, 'NOPE = "secretsmanager:sample-api/dev/absent#k"\n')
    before = _files(setup)
    proc = run(setup, "secrets", "dev", "env-file", str(setup / ".env.dev"))
    assert proc.returncode == 2
    assert "NOPE" in _one_error_line(proc)
    assert _files(setup) == before


# -- lambda -----------------------------------------------------------------------------------------
def _create_function(aws, name):
    iam = aws.client("iam")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("h.py", "def handler(event, context):\n    return 1\n")
    aws.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="h.handler",
        Code={"ZipFile": buf.getvalue()},
        Environment={"Variables": {"LOG_LEVEL": "info", "API_HOST": "old-host.example"}},
    )
    return name


def test_lambda_pins_references_keeps_other_keys_and_drops_old_values(setup, run, seeded, emulator_state):
    aws = seeded
    fn = _create_function(aws, "sample-api-dev-merge")
    proc = run(setup, "secrets", "dev", "lambda", "--function", fn)
    assert proc.returncode == 0, proc.stderr
    assert "pinned 3 references" in proc.stdout and "kept 1 others" in proc.stdout
    assert "removed API_HOST" in proc.stdout  # the value an older stageflow merged in
    env = aws.client("lambda").get_function_configuration(FunctionName=fn)["Environment"]["Variables"]
    db = aws.client("secretsmanager").get_secret_value(SecretId="sample-api/dev/database")
    assert env == {
        "LOG_LEVEL": "info",
        "STAGEFLOW_SECRET_DB_PASSWORD": f"secretsmanager:{db['ARN']}?versionId={db['VersionId']}#password",
        "STAGEFLOW_SECRET_API_TOKEN": env["STAGEFLOW_SECRET_API_TOKEN"],
        "STAGEFLOW_SECRET_API_HOST": "ssm:/sample-api/dev/api/host:1",
    }
    assert env["STAGEFLOW_SECRET_API_TOKEN"].startswith("secretsmanager:arn:aws:secretsmanager:")
    _assert_no_leaks(run, [setup, emulator_state], extra={"function": json.dumps(env)})


def test_lambda_needs_a_function_name(setup, run):
    proc = run(setup, "secrets", "dev", "lambda")
    assert proc.returncode == 2
    assert "--function" in _one_error_line(proc)


def test_lambda_unknown_function_exit_2(setup, run):
    proc = run(setup, "secrets", "dev", "lambda", "--function", "no-such-fn")
    assert proc.returncode == 2
    assert "not found" in _one_error_line(proc)


def test_action_env_order_is_accepted_and_unknown_action_refused(setup, run):
    proc = run(setup, "secrets", "validate", "dev")
    assert proc.returncode == 0, proc.stderr
    bad = run(setup, "secrets", "dev", "renew")
    assert bad.returncode == 2
    assert "unknown secrets action" in _one_error_line(bad)
    no_name = run(setup, "secrets", "dev", "rotate")  # rotate is an action: it names one secret
    assert no_name.returncode == 2
    assert "rotate needs exactly one NAME" in _one_error_line(no_name)


def test_url_form_of_value_in_child_output(setup, run):
    # a child building a connection URL with the password percent-encoded
    url = (
        "import os, urllib.parse as u;"
        "print('postgres://app:' + u.quote_plus(os.environ['DB_PASSWORD']) + '@h/db')"
    )
    proc = run(setup, "secrets", "dev", "exec", "--", sys.executable, "-c", url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "postgres://app:***@h/db"
    assert urllib.parse.quote_plus(DB_PASSWORD) not in proc.stdout
