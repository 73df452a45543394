"""`stageflow rehearse` refuses bad input before anything starts (exit 2, one line, naming the key)."""

from __future__ import annotations

import json

from tests.conftest import REPO


def test_bad_scenario_names_the_key(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seed": 1, "traffic_per_minute": 600, "stable": {}, "canary": {}}))
    r = cli("--config", str(REPO / "stageflow.toml"), "rehearse", "--scenario", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("stageflow: error: scenario ")
    assert "stable.error_rate: is required" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_scenario_file(cli, tmp_path):
    r = cli("--config", str(REPO / "stageflow.toml"), "rehearse", "--scenario", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_rehearse_refuses_real_aws(cli):
    sc = REPO / "tests" / "fixtures" / "scenarios" / "healthy-identical.json"
    r = cli("--config", str(REPO / "stageflow.toml"), "--no-local", "rehearse", "--scenario", str(sc))
    assert r.returncode == 2 and "only against the local emulator" in r.stderr


def test_rehearse_unknown_environment(cli):
    sc = REPO / "tests" / "fixtures" / "scenarios" / "healthy-identical.json"
    r = cli("--config", str(REPO / "stageflow.toml"), "rehearse", "--scenario", str(sc), "--env", "nope")
    assert r.returncode == 2 and "unknown environment 'nope'" in r.stderr
