"""``rollback ENV --infra`` on the in-memory fakes: which release it restores, its refusals (exit 2,
nothing re-applied, no traffic moved), "no infrastructure change to roll back" (traffic only), the
recorded event and the incident's note. The Terraform side (``reapply``) is a seam here; the end-to-end
test runs it for real (tests/e2e/test_rollback_infra.py)."""

from __future__ import annotations

import pytest

from stageflow.config import load
from stageflow.deploy.records import Deployment
from stageflow.deploy.status import history_lines
from stageflow.errors import ExitCode, UnknownEnvironmentError, UsageError
from stageflow.rollback.cli import rollback
from stageflow.rollback.infra import NO_CHANGE, Reapplied, rollback_infra
from stageflow.rollback.reapply import protect
from stageflow.terraform.errors import PolicyError
from tests.conftest import REPO
from tests.fakes import FakeRouter, InMemoryHistory, config_env, fake_context
from tests.unit.test_on_call_safety import run as run_cli


def _dep(n: int, *, commit: str | None, digest: str | None, status: str = "succeeded") -> Deployment:
    extra = {"release": {"infra_digest": digest, "secrets": []}} if digest else {}
    return Deployment(
        deployment_id=f"d{n}",
        environment="dev",
        service="svc",
        version=str(n),
        previous_version=str(n - 1) if n > 1 else None,
        status=status,
        phase=status,
        started_at=f"2025-12-0{n}T00:00:00.000Z",
        ended_at=f"2025-12-0{n}T00:10:00.000Z",
        who="ci",
        commit=commit,
        extra=extra,
    )


def _ctx(*deps: Deployment):
    history = InMemoryHistory("dev")
    for d in deps:
        history.create(d)
    router = FakeRouter(versions=("1", "2"), primary="2")
    return fake_context(config_env("dev"), history=history, router=router)


class Reapply:
    """The Terraform side: ``changes`` False is a plan without changes (nothing applied)."""

    def __init__(self, fail: Exception | None = None, changes: bool = True):
        self.commits: list[str] = []
        self.fail = fail
        self.changes = changes

    def __call__(self, commit: str) -> Reapplied:
        self.commits.append(commit)
        if self.fail is not None:
            raise self.fail
        if not self.changes:
            return Reapplied(False, "no changes", "planhash")
        return Reapplied(True, "0 to add, 1 to change, 0 to destroy", "planhash")


def _run(ctx, reapply, *, commits=("aaa111", "bbb222"), working_tree="WT"):
    return rollback_infra(
        ctx,
        has_commit=lambda c: c in commits,
        working_tree_digest=lambda: working_tree,
        reapply=reapply,
        traffic=rollback,
        reason="retention change broke it",
        who="oncall",
    )


def test_restores_the_last_good_releases_infrastructure_then_its_traffic_and_records_both():
    ctx = _ctx(_dep(1, commit="aaa111", digest="D1"), _dep(2, commit="bbb222", digest="D2"))
    reapply = Reapply()
    res = _run(ctx, reapply)
    assert reapply.commits == ["aaa111"]  # the last good release's commit, not the newest
    assert ctx.traffic.state().weights == {"1": 100} and res.traffic.changed
    assert (res.digest, res.applied_digest) == ("D1", "D2")
    ev = next(e for e in ctx.history.events() if e["kind"] == "infra_rollback")
    assert ev["commit"] == "aaa111" and ev["infra_digest"] == "D1" and ev["from_digest"] == "D2"
    assert ev["who"] == "oncall" and ev["to_version"] == "1" and ev["plan_sha256"] == "planhash"
    # the traffic rollback's incident says what was restored
    (incident,) = ctx.history.incidents()
    assert "infrastructure re-applied from commit aaa111" in str(incident)
    assert res.to_json()["infrastructure"]["applied"] is True


@pytest.mark.parametrize(
    ("deps", "commits", "says"),
    [
        (
            (_dep(1, commit=None, digest="D1"), _dep(2, commit="bbb222", digest="D2")),
            (),
            "no recorded commit",
        ),
        (
            (_dep(1, commit="0ld0ld", digest="D1"), _dep(2, commit="bbb222", digest="D2")),
            ("bbb222",),
            "is not in this repository",
        ),
        ((_dep(2, commit="bbb222", digest="D2"),), ("bbb222",), "no recorded release of v"),
    ],
    ids=["no-commit", "commit-not-in-repository", "no-release-recorded"],
)
def test_refusals_change_nothing(deps, commits, says):
    ctx = _ctx(*deps)
    reapply = Reapply()
    with pytest.raises(UsageError) as err:
        _run(ctx, reapply, commits=commits)
    assert says in err.value.message and err.value.exit_code == ExitCode.USAGE
    assert reapply.commits == [] and ctx.traffic.state().weights == {"2": 100}
    assert ctx.history.events() == []


def test_a_plan_without_changes_is_no_infrastructure_change_then_traffic_only():
    ctx = _ctx(_dep(1, commit="aaa111", digest="SAME"), _dep(2, commit="bbb222", digest="SAME"))
    reapply = Reapply(changes=False)
    res = _run(ctx, reapply)
    assert reapply.commits == ["aaa111"] and not res.reapplied.applied
    assert ctx.traffic.state().weights == {"1": 100}
    assert any(NO_CHANGE in line for line in ctx.reporter.lines), ctx.reporter.lines
    assert not [e for e in ctx.history.events() if e["kind"] == "infra_rollback"]


def test_equal_recorded_digests_still_plan():
    """A `stageflow apply` or a console change since the last deploy records no digest: only the plan
    (Terraform's refresh) sees it, so the release's commit is planned whatever the records say."""
    ctx = _ctx(_dep(1, commit="aaa111", digest="SAME"), _dep(2, commit="bbb222", digest="SAME"))
    reapply = Reapply()
    res = _run(ctx, reapply, working_tree="SAME")
    assert reapply.commits == ["aaa111"] and res.reapplied.applied
    assert [e["kind"] for e in ctx.history.events()].count("infra_rollback") == 1


def test_a_refused_plan_moves_no_traffic():
    ctx = _ctx(_dep(1, commit="aaa111", digest="D1"), _dep(2, commit="bbb222", digest="D2"))
    refused = PolicyError("environment prod is protected: the plan destroys 1 resource", "--allow-destroy")
    with pytest.raises(PolicyError) as err:
        _run(ctx, Reapply(fail=refused))
    assert err.value.exit_code == ExitCode.USAGE  # exit 2
    assert ctx.traffic.state().weights == {"2": 100} and ctx.history.events() == []
    assert ctx.history.incidents() == []


def test_an_infra_rollback_is_what_is_applied_afterwards():
    ctx = _ctx(_dep(1, commit="aaa111", digest="D1"), _dep(2, commit="bbb222", digest="D2"))
    _run(ctx, Reapply())
    again = Reapply(changes=False)
    res = _run(ctx, again)
    assert again.commits == ["aaa111"] and res.applied_digest == "D1"  # the event's D1 is recorded as applied


def test_an_old_commit_is_held_to_the_protection_the_working_tree_gives():
    cfg = load(REPO / "stageflow.toml")
    assert not cfg.env("dev").protected
    held = protect(cfg, "dev", True)
    assert held.env("dev").protected and held.env("staging") == cfg.env("staging")
    assert protect(cfg, "dev", False) is cfg  # unprotected now: the commit's own setting
    assert protect(cfg, "prod", False).env("prod").protected  # never lifted by the working tree
    with pytest.raises(UnknownEnvironmentError):  # an environment the commit did not have: exit 2
        protect(cfg, "qa", True)


@pytest.mark.parametrize(
    "args",
    [
        ("rollback", "dev", "--infra", "--to", "3"),
        ("rollback", "--infra"),
        ("rollback", "dev", "--infra", "--from-alarm-event", "-"),
    ],
    ids=["with --to", "no environment", "with an alarm event"],
)
def test_infra_with_other_targets_is_a_usage_error_before_anything_starts(tmp_path, args):
    r = run_cli(tmp_path, "--local", *args)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("stageflow: error: --infra takes an environment and no --to or --from-alarm-event")
    assert not (tmp_path / "state").exists()  # no emulator started, nothing written


def test_history_lists_the_infra_rollback():
    ev = {
        "kind": "infra_rollback",
        "at": "2025-12-03T00:00:00.000Z",
        "who": "oncall",
        "reason": "retention broke",
        "to_version": "1",
        "commit": "aaa111",
        "summary": "0 to create, 1 to update, 0 to replace, 2 to delete",
    }
    (line,) = history_lines([], [ev])
    assert "infra_rollback" in line and "infrastructure of v1 from commit aaa111" in line
    assert line.endswith("by oncall: retention broke") and "2 to delete" in line
