"""The command line: parse, call one service function, print, map errors to exit codes.

``main()`` is the console script; ``cli`` is the click group. Heavy libraries (boto3, docker, scipy)
are imported inside commands, so ``stageflow --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stageflow import __version__
from stageflow.config import to_plain
from stageflow.errors import EXIT_CODE_HELP, ExitCode, StageflowError
from stageflow.factory import Factory
from stageflow.report import Reporter

EXIT_CODES_TEXT = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code):>3}  {text}" for code, text in EXIT_CODE_HELP.items()
)


class StageflowGroup(click.Group):
    def list_commands(self, ctx):  # keep the order commands were added in
        return list(self.commands)


def pass_factory(f):
    return click.pass_obj(f)


@click.group(
    cls=StageflowGroup, epilog=EXIT_CODES_TEXT, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, "--version", prog_name="stageflow")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Path to stageflow.toml (default: the nearest one upwards from here).",
)
@click.option(
    "--local/--no-local",
    "local",
    default=None,
    help="Target the embedded local AWS emulator (default: when STAGEFLOW_LOCAL=1 or no AWS "
    "credentials are found).",
)
@click.option("--json", "json_mode", is_flag=True, help="Machine output: one JSON document on stdout.")
@click.option("--traceback", is_flag=True, help="Show the full traceback on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only print results and errors.")
@click.pass_context
def cli(ctx, config_path, local, json_mode, traceback, quiet):
    """stageflow: build, plan and ship a service to AWS in canary steps, and roll it back."""
    ctx.obj = Factory(
        config_path=config_path,
        local=local,
        reporter=Reporter(json_mode=json_mode, quiet=quiet),
        command=ctx.invoked_subcommand,
    )


# -- stageflow local ---------------------------------------------------------------------------------
@cli.group("local")
def local_group():
    """The embedded AWS emulator on 127.0.0.1 (moto server): up, down, status, reset."""


@local_group.command("up")
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
@pass_factory
def local_up(factory: Factory, port: int):
    """Start the emulator (if not running) and create the Terraform state bucket and lock table."""
    from stageflow.aws import AwsClients, AwsTarget
    from stageflow.local.bootstrap import bootstrap

    status, started = factory.emulator.up(port=port)
    result = bootstrap(AwsClients(AwsTarget(factory.region, True, status.endpoint)), factory.region)
    verb = "started" if started else "already running"
    factory.reporter.result(
        f"local AWS emulator {verb} on {status.endpoint} (pid {status.pid}); "
        f"state bucket {result.bucket}, lock table {result.table}",
        {**status.to_json(), "started": started, "state_bucket": result.bucket, "lock_table": result.table},
    )


@local_group.command("down")
@pass_factory
def local_down(factory: Factory):
    """Stop the emulator and discard its state. Harmless when none runs."""
    stopped = factory.emulator.down()
    factory.reporter.result(
        "local AWS emulator stopped" if stopped else "local AWS emulator was not running",
        {"stopped": stopped},
    )


@local_group.command("status")
@pass_factory
def local_status(factory: Factory):
    """Show whether the emulator runs, its PID and endpoint."""
    st = factory.emulator.status()
    if st.running:
        human = f"running: {st.endpoint} (pid {st.pid}); log {st.log}"
    else:
        human = "not running" + (" (stale record removed on next up)" if st.stale else "")
    factory.reporter.result(human, st.to_json())


@local_group.command("reset")
@pass_factory
def local_reset(factory: Factory):
    """Clear all emulator state, then create the state bucket and lock table again."""
    from stageflow.aws import AwsClients, AwsTarget
    from stageflow.local.bootstrap import bootstrap

    factory.emulator.reset()
    for stale in (factory.state_dir / "local").glob("outputs-*.json"):
        stale.unlink(missing_ok=True)  # resources built by Terraform in the emulator are gone
    st = factory.emulator.status()
    bootstrap(AwsClients(AwsTarget(factory.region, True, st.endpoint)), factory.region)
    factory.reporter.result(f"local AWS emulator reset ({st.endpoint})", {"reset": True, **st.to_json()})


# -- stageflow config ---------------------------------------------------------------------------------
@cli.command("config")
@pass_factory
def config_cmd(factory: Factory):
    """Validate stageflow.toml and print the effective settings per environment."""
    cfg = factory.config
    data = {
        "path": str(cfg.path),
        "service": to_plain(cfg.service),
        "tests": to_plain(cfg.tests),
        "environments": {n: _env_json(e) for n, e in cfg.environments.items()},
        # every function of the release ([functions.*], or the one [service] describes)
        "functions": {f.key: to_plain(f) for f in cfg.functions},
    }
    svc = cfg.service
    lines = [f"{cfg.path}: ok — service {svc.name} in {svc.region}, {svc.runtime} on {svc.architecture}"]
    for f in cfg.functions:
        sized = (f" {f.memory_mb} MB" if f.memory_mb else "") + (f" {f.timeout_s} s" if f.timeout_s else "")
        lines.append(f"  function {f.key}: {f.handler}{sized}")
    for name, env in cfg.environments.items():
        steps = " → ".join(
            f"{s.weight}%" + (f" ({s.bake_minutes:g} min)" if s.bake_minutes else "")
            for s in env.canary.steps
        )
        lines.append(
            f"  {name}: {env.memory_mb} MB, logs {env.log_retention_days} d, "
            f"x-ray {'on' if env.xray else 'off'}, canary {steps}, "
            f"monitor {env.canary.post_promotion_minutes:g} min, "
            f"approvals {'yes' if env.approvals.before_canary or env.approvals.between_steps else 'no'}"
        )
    factory.reporter.result("\n".join(lines), data)


def _env_json(env) -> dict:
    d = to_plain(env)
    d["secrets"] = sorted(env.secrets)  # names only
    return d


def _register_commands() -> None:
    """Feature modules add their commands here (one import each)."""
    import importlib

    for module in (
        "stageflow.commands.canary",
        "stageflow.commands.approvals",
        "stageflow.commands.freeze",
        "stageflow.commands.incidents",
        "stageflow.commands.pipeline",
        "stageflow.commands.rehearse",
        "stageflow.commands.secrets",
        "stageflow.commands.security",
        "stageflow.commands.terraform",
        "stageflow.commands.build",
        "stageflow.commands.artifacts",
        "stageflow.commands.dora",
        "stageflow.commands.service_tests",
        "stageflow.commands.chaos",
    ):
        importlib.import_module(module).register(cli)


_register_commands()


GLOBAL_FLAGS = ("--json", "--local", "--no-local", "--traceback", "-q", "--quiet")


def hoist_global_flags(args: list[str]) -> list[str]:
    """Accept the global flags anywhere before ``--``: ``stageflow local status --json`` works."""
    try:
        cut = args.index("--")
    except ValueError:
        cut = len(args)
    head, tail = args[:cut], args[cut:]
    flags = [a for a in head if a in GLOBAL_FLAGS]
    rest = [a for a in head if a not in GLOBAL_FLAGS]
    return flags + rest + tail


def _safe(line: str) -> str:
    """An error line as printed: secret values redacted, control characters escaped."""
    from stageflow.redact import REDACTOR
    from stageflow.report import escape_controls

    return escape_controls(REDACTOR.redact(line))


def main(argv: list[str] | None = None) -> int:
    args = hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    show_traceback = "--traceback" in args
    reporter_err = sys.stderr
    try:
        rv = cli.main(args=args, prog_name="stageflow", standalone_mode=False)
        if isinstance(rv, int) and rv:  # a command's ctx.exit(N) / Exit(N), e.g. `secrets exec`'s child
            return rv
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        if show_traceback:
            raise
        msg = exc.format_message()
        hint = "see --help"
        reporter_err.write(_safe(f"stageflow: error: {' '.join(msg.split())} ({hint})") + "\n")
        return int(ExitCode.USAGE)
    except click.exceptions.Abort:
        reporter_err.write("stageflow: error: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except StageflowError as exc:
        if show_traceback:
            raise
        reporter_err.write(_safe(f"stageflow: error: {exc.one_line()}") + "\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        reporter_err.write("stageflow: error: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a bug
        if show_traceback:
            raise
        from stageflow.aws import aws_error

        mapped = aws_error(exc)  # a botocore error that escaped its module: exit 3, one line
        if mapped is not None:
            reporter_err.write(_safe(f"stageflow: error: {mapped.one_line()}") + "\n")
            return int(mapped.exit_code)

        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        reporter_err.write(_safe(f"stageflow: error: unexpected {text} (rerun with --traceback)") + "\n")
        return int(ExitCode.UNEXPECTED)
    return 0


def entrypoint() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
