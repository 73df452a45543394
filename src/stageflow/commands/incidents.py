"""CLI: ``stageflow incidents ENV [--json] [--postmortem KEY [--out FILE]]``."""

from __future__ import annotations

from pathlib import Path

import click


def _line(i: dict) -> str:
    ttr = i.get("time_to_restore_s")
    took = f"restored in {ttr / 60:.1f} min" if ttr is not None else "NOT restored"
    return (
        f"{i['key']}  {i['opened_at']}  {i['trigger']:<8} v{i.get('bad_version') or '?'} → "
        f"v{i.get('restored_version') or '?'}  {took}  post-mortem due {i.get('postmortem_due', '')[:10]}"
        f"\n    {i.get('reason')} (by {i.get('who')})"
    )


def register(cli: click.Group) -> None:
    @cli.command("incidents")
    @click.argument("env")
    @click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
    @click.option("--postmortem", "key", default=None, help="Print (or --out) the post-mortem draft of KEY.")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
    @click.pass_obj
    def incidents_cmd(factory, env, limit, key, out):
        """Every rollback that moved traffic in ENV (newest first), or one incident's post-mortem draft."""
        from stageflow.commands.dora import writable_path
        from stageflow.errors import UsageError
        from stageflow.incidents import Incident
        from stageflow.incidents.postmortem import render

        if out is not None and key is None:
            raise UsageError("--out goes with --postmortem KEY")
        if out is not None:
            writable_path(out)  # before anything is read
        ctx = factory.environment(env)
        if key is None:
            found = ctx.history.incidents(limit=limit)
            lines = [_line(i) for i in found] or [f"{env}: no incidents recorded"]
            factory.reporter.result("\n".join(lines), {"environment": env, "incidents": found})
            return
        found = ctx.history.incident(key)
        if found is None:
            raise UsageError(f"no incident {key} in {env}", f"list them: stageflow incidents {env}")
        inc = Incident.from_json(found)
        dep = ctx.history.get(inc.deployment_id) if inc.deployment_id else None
        text = render(inc, dep)
        if out is not None:
            out.expanduser().write_text(text, encoding="utf-8")
            factory.reporter.result(f"{env}: post-mortem draft of {key} written to {out}", {"path": str(out)})
        else:
            factory.reporter.result(text, {"incident": inc.to_json(), "postmortem": text})
