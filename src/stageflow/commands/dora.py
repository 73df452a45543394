"""CLI: ``stageflow dora ENV [--days N] [--png FILE]``, ``stageflow report [ID] --env ENV [--html FILE]``
and the ``--report FILE`` of ``canary`` and ``rehearse``."""

from __future__ import annotations

from pathlib import Path

import click

from stageflow.errors import UsageError


def writable_path(path: Path) -> Path:
    """Refuse before any work when the file cannot be written (exit 2, nothing changed): the directory
    must exist and take a new file (probed: permission bits say nothing to root, nor about /proc), and an
    existing file must be a regular, writable file."""
    import os
    import tempfile

    target = path.expanduser()
    parent = target.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: directory {parent} does not exist", "create it first")
    if target.exists() and (not target.is_file() or not os.access(target, os.W_OK)):
        raise UsageError(f"cannot write {path}: not a writable regular file", "choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".stageflow-write-check-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}", "choose a writable directory"
        ) from None
    return target


def dora_result(factory, env_name: str, *, days: float, png: Path | None = None):
    from datetime import timedelta

    from stageflow.dora.compute import compute, latest_time
    from stageflow.dora.source import load

    ctx = factory.environment(env_name)
    now = factory.clock.now()
    deps, events = load(ctx.history, until=now, days=days)
    latest = latest_time(deps, events)
    until = max(now, latest) if latest else now  # a virtual clock may have run ahead of the wall
    if latest and latest > now:
        deps, events = load(ctx.history, until=until, days=days)
    incidents = ctx.history.incidents_since(until - timedelta(days=days + 1))
    report = compute(env_name, deps, events, until=until, days=days, incidents=incidents)
    data = report.to_json()
    if png is not None:
        from stageflow.dora.render import trend_png

        trend_png(report, png)
        data["png"] = str(png)
    return report, data


def write_deployment_report(factory, env_name: str, deployment_id: str | None, html: Path | None):
    """The report of ``deployment_id`` (default: the environment's last deployment)."""
    from stageflow.deployment_report.data import gather

    ctx = factory.environment(env_name)
    if deployment_id:
        dep = ctx.history.get(deployment_id)
        if dep is None:
            raise UsageError(
                f"no deployment {deployment_id} in {env_name}", f"list them: stageflow history {env_name}"
            )
    else:
        latest = ctx.history.list(limit=1)
        if not latest:
            raise UsageError(
                f"no deployments recorded in {env_name}", f"deploy first: stageflow canary {env_name}"
            )
        dep = latest[0]
    data = gather(ctx.history, dep, ctx.env.gates)
    if html is not None:
        from stageflow.deployment_report.render import write_report

        write_report(data, html)
    return data


def register(cli: click.Group) -> None:
    @cli.command("dora")
    @click.argument("env")
    @click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True, help="The period.")
    @click.option(
        "--png",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also draw the trend over the period into this PNG file.",
    )
    @click.pass_obj
    def dora_cmd(factory, env, days, png):
        """The four DORA metrics of ENV from its deployment history, against the design's targets.

        Deployment frequency (with its DORA band), lead time (commit → promoted), change failure
        rate and time to restore; see docs/dora.md for the definitions."""
        from stageflow.dora.render import human

        factory.config.env(env)  # unknown environment: exit 2 before anything else
        if png is not None:
            png = writable_path(png)
        report, data = dora_result(factory, env, days=days, png=png)
        text = human(report) + (f"\n  trend: {png}" if png is not None else "")
        factory.reporter.result(text, data)

    @cli.command("report")
    @click.argument("deployment_id", required=False)
    @click.option("--env", "env", required=True, help="The deployment's environment.")
    @click.option(
        "--html",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write one self-contained HTML file (charts embedded) here.",
    )
    @click.pass_obj
    def report_cmd(factory, deployment_id, env, html):
        """One deployment (default: ENV's last): timeline, every check with its numbers, charts."""
        from stageflow.deployment_report.render import human

        factory.config.env(env)
        if html is not None:
            html = writable_path(html)
        data = write_deployment_report(factory, env, deployment_id, html)
        text = human(data) + (f"\n  report: {html}" if html is not None else "")
        out = data.to_json()
        if html is not None:
            out["html"] = str(html)
        factory.reporter.result(text, out)


class report_after:  # noqa: N801 - used as a context manager: ``with report_after(...)``
    """Write ENV's last deployment's HTML report when the run ends promoted, paused or rolled back
    (exit 0, 4 or 5: the report of a rollback matters most); not when it failed before a deployment
    of its own. A report failure never hides the run's own outcome: it becomes a warning."""

    def __init__(self, factory, env: str, path: Path | None):
        self.factory, self.env = factory, env
        self.path = writable_path(path) if path is not None else None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from stageflow.errors import ReleaseRejected, RollbackFailed

        if self.path is None:
            return False
        if exc_type is not None and not issubclass(exc_type, ReleaseRejected | RollbackFailed):
            return False  # the run did not get to a deployment of its own (usage, lock, AWS error)
        try:
            write_deployment_report(self.factory, self.env, None, self.path)
            self.factory.reporter.info("report", self.env, f"written to {self.path}")
        except Exception as err:  # noqa: BLE001 - the run's outcome matters more than its report
            self.factory.reporter.warn(f"report not written: {type(err).__name__}: {err}")
        return False
