"""``stageflow rollback ENV --infra``: the last good release's infrastructure re-applied from its
recorded commit, then traffic restored as ``rollback`` does (:func:`stageflow.rollback.cli.rollback`).

The decisions live here, on the wired environment's ports; checking out a commit and running Terraform
on it is :mod:`stageflow.rollback.reapply`, handed in as ``reapply`` (the composition root wires it).

Refused (exit 2, nothing changed): no recorded release of the target version, a release without a
recorded commit, a commit the repository does not have. The release's commit is always planned: the
recorded digests cannot see a `stageflow apply` or a console change made since, Terraform's refresh
can. A plan without changes applies nothing ("no infrastructure change to roll back") and traffic is
restored as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stageflow.errors import UsageError
from stageflow.history.locks import default_who
from stageflow.rollback.core import RollbackRequest, RollbackResult, choose_target

if TYPE_CHECKING:
    from stageflow.deploy.canary import Context
    from stageflow.deploy.records import Deployment

EVENT_KIND = "infra_rollback"
NO_CHANGE = "no infrastructure change to roll back"
TRAFFIC_ONLY = "roll back traffic only: stageflow rollback ENV"


@dataclass(frozen=True)
class Reapplied:
    """What :mod:`.reapply` did: the plan's headline, whether it applied, the plan hash."""

    applied: bool
    headline: str
    plan_sha256: str


@dataclass(frozen=True)
class InfraRollback:
    release: Deployment  # the last good release whose infrastructure was restored
    commit: str
    digest: str | None
    applied_digest: str | None
    reapplied: Reapplied  # .applied False: the plan had no changes (no infrastructure change to roll back)
    traffic: RollbackResult

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment_id": self.release.deployment_id,
            "version": self.release.version,
            "commit": self.commit,
            "infra_digest": self.digest,
            "applied_digest": self.applied_digest,
            "infrastructure": {
                "applied": self.reapplied.applied,
                "summary": self.reapplied.headline,
                "plan_sha256": self.reapplied.plan_sha256,
            },
            "traffic": self.traffic.to_json(),
        }


def release_digest(dep: Deployment) -> str | None:
    rel = dep.extra.get("release") if isinstance(dep.extra, dict) else None
    return rel.get("infra_digest") if isinstance(rel, dict) else None


def last_good_release(ctx: Context) -> Deployment:
    """The recorded release of the version ``rollback`` would restore (the same choice: in-flight
    previous, already rolled back to, last known good)."""
    req = RollbackRequest(environment=ctx.env.name, service=ctx.service)
    version = choose_target(req, ctx.history, ctx.traffic, ctx.traffic.state(), ctx.history.in_flight())
    for dep in ctx.history.list(limit=50):
        if dep.version == version and dep.status == "succeeded":
            return dep
    raise UsageError(
        f"no recorded release of v{version} in {ctx.env.name}: its infrastructure is unknown", TRAFFIC_ONLY
    )


def applied_digest(history, working_tree: Callable[[], str]) -> str | None:
    """The digest of the infrastructure applied now as the records know it (recorded in the event as
    ``from_digest``; never used to skip the plan): the newest of the deployments' and the infra
    rollbacks' recorded digests; none recorded: the working tree's (what a deploy from here applies)."""
    found: list[tuple[str, str]] = []
    for dep in history.list(limit=20):
        digest = release_digest(dep)
        if digest:
            found.append((dep.started_at or "", digest))
            break
    for ev in history.events(limit=20):
        if ev.get("kind") == EVENT_KIND and ev.get("infra_digest"):
            found.append((ev.get("at") or "", ev["infra_digest"]))
            break
    if found:
        return max(found)[1]
    return working_tree()


def check_release(dep: Deployment, has_commit: Callable[[str], bool]) -> str:
    """The release's commit, or the refusal (exit 2)."""
    if not dep.commit:
        raise UsageError(
            f"release v{dep.version} ({dep.deployment_id}) has no recorded commit: its infrastructure "
            "cannot be restored",
            TRAFFIC_ONLY,
        )
    if not has_commit(dep.commit):
        raise UsageError(
            f"commit {dep.commit} of release v{dep.version} is not in this repository",
            "fetch it (git fetch) and run again from a clone that has it; or " + TRAFFIC_ONLY,
        )
    return dep.commit


def rollback_infra(
    ctx: Context,
    *,
    has_commit: Callable[[str], bool],
    working_tree_digest: Callable[[], str],
    reapply: Callable[[str], Reapplied],
    traffic: Callable[..., RollbackResult],
    reason: str = "manual rollback by on-call",
    who: str | None = None,
) -> InfraRollback:
    """Restore the last good release's infrastructure (``reapply(commit)``: plan → policy → apply),
    then its traffic (``traffic(ctx, reason=...)``: the rollback core); record an ``infra_rollback``
    event. A refused or failed re-apply changes no traffic."""
    who = who or default_who()
    dep = last_good_release(ctx)
    commit = check_release(dep, has_commit)
    digest = release_digest(dep)
    applied = applied_digest(ctx.history, working_tree_digest)
    name = ctx.env.name
    ctx.reporter.info("rollback", name, f"infrastructure of v{dep.version} from commit {commit}")
    done = reapply(commit)
    if done.applied:
        ctx.reporter.info("rollback", name, f"infrastructure of commit {commit}: {done.headline}")
        record(ctx, who, reason, dep, commit, digest, applied, done)
    else:
        ctx.reporter.info("rollback", name, f"{NO_CHANGE}: commit {commit} plans no changes; traffic only")
    note = f"infrastructure re-applied from commit {commit}" if done.applied else NO_CHANGE
    result = traffic(ctx, reason=f"{reason} ({note})", who=who)
    return InfraRollback(dep, commit, digest, applied, done, result)


def record(ctx: Context, who, reason, dep: Deployment, commit, digest, applied, done: Reapplied) -> None:
    """The ``infra_rollback`` event, written as soon as the infrastructure moved (before traffic)."""
    data = {
        "who": who,
        "reason": reason,
        "deployment_id": dep.deployment_id,
        "to_version": dep.version,
        "commit": commit,
        "infra_digest": digest,
        "from_digest": applied,
        "applied": done.applied,
        "summary": done.headline,
        "plan_sha256": done.plan_sha256,
    }
    ctx.history.record_event(EVENT_KIND, ctx.clock.now(), {k: v for k, v in data.items() if v is not None})
