"""``stageflow secrets ENV ACTION``: validate, exec, env-file, lambda.

The order ``stageflow secrets ACTION ENV`` is accepted too. Everything printed goes through the
redacting Reporter; a child's output under ``exec`` is streamed through it line by line.
"""

from __future__ import annotations

import click

from stageflow.errors import UsageError

ACTIONS = ("validate", "exec", "env-file", "lambda", "rotate")

HELP = """Secrets of environment ENV, read from Secrets Manager (at AWSCURRENT) and Parameter Store.

\b
ACTION is one of:
  validate          every reference resolves; all failures listed in one error (exit 2, or 3 if denied)
  exec -- CMD ...   run CMD with the values in its environment; its output is masked
  env-file PATH     write NAME=value lines to PATH (mode 0600, atomic); refuses a file with wider
                    permissions or one tracked by git
  lambda            pin the function's environment to the secrets' current versions (references,
                    never values), keeping other keys
  rotate NAME       store a new value of NAME (generated, or --stdin) as a new version and ship it
                    through the canary; a rollback brings the previous one back

\b
Examples:
  stageflow secrets prod validate
  stageflow secrets dev exec -- python manage.py migrate
  stageflow secrets dev exec --pristine -- env
  stageflow secrets dev env-file .env.dev
  stageflow secrets staging lambda --function sample-api-staging
"""


def _order(env_name: str, action: str) -> tuple[str, str]:
    """Accept ``ENV ACTION`` and ``ACTION ENV``."""
    if action not in ACTIONS and env_name in ACTIONS:
        return action, env_name
    return env_name, action


def register(cli) -> None:
    @cli.command("secrets", help=HELP, short_help="Validate, exec with, write or push secrets.")
    @click.argument("env_name", metavar="ENV")
    @click.argument("action", metavar="ACTION")
    @click.argument("args", nargs=-1, metavar="[PATH | -- CMD ...]")
    @click.option(
        "--version-stage",
        default="AWSCURRENT",
        show_default=True,
        help="Secrets Manager staging label to read (e.g. AWSPENDING). Parameters are read at their latest.",
    )
    @click.option("--pristine", is_flag=True, help="exec: the child gets only the secrets, not even PATH.")
    @click.option("--tf-vars", is_flag=True, help="exec: also export each value as TF_VAR_<name lowercased>.")
    @click.option(
        "--function",
        "function_name",
        default=None,
        help="lambda: the function (default: environments.ENV.function in stageflow.toml).",
    )
    @click.option("--stdin", "from_stdin", is_flag=True, help="rotate: read the new value from stdin.")
    @click.option(
        "--length", type=int, default=40, show_default=True, help="rotate: characters of a generated value."
    )
    @click.pass_obj
    def secrets_cmd(
        factory, env_name, action, args, version_stage, pristine, tf_vars, function_name, from_stdin, length
    ):
        env_name, action = _order(env_name, action)
        if action not in ACTIONS:
            raise UsageError(f"unknown secrets action {action!r}", f"one of: {', '.join(ACTIONS)}")
        if pristine and action != "exec":
            raise UsageError("--pristine is for exec only", "stageflow secrets ENV exec --pristine -- CMD")
        if tf_vars and action != "exec":
            raise UsageError("--tf-vars is for exec only", "stageflow secrets ENV exec --tf-vars -- CMD")
        if function_name is not None and action != "lambda":
            raise UsageError("--function is for lambda only", "stageflow secrets ENV lambda --function NAME")
        if (from_stdin or length != 40) and action != "rotate":
            raise UsageError("--stdin and --length are for rotate only", "stageflow secrets ENV rotate NAME")
        if action == "rotate":
            from stageflow.commands.secrets_rotate import rotate

            return rotate(factory, env_name, args=args, stdin=from_stdin, length=length)
        if action in ("validate", "lambda") and args:
            raise UsageError(f"{action} takes no further arguments, got {' '.join(args)!r}", "see --help")
        if action == "env-file" and len(args) != 1:
            raise UsageError("env-file needs exactly one PATH", "stageflow secrets ENV env-file PATH")
        if action == "exec" and not args:
            raise UsageError("exec needs a command", "stageflow secrets ENV exec -- CMD [ARGS...]")
        handler = {"validate": _validate, "exec": _exec, "env-file": _env_file, "lambda": _lambda}[action]
        handler(
            factory,
            env_name,
            args=args,
            version_stage=version_stage,
            pristine=pristine,
            tf_vars=tf_vars,
            function_name=function_name,
        )


def _prepare(factory, env_name: str, version_stage: str):
    """Check the stage, the environment and every reference before any AWS call."""
    from stageflow.secrets.refs import check_version_stage, parse_refs

    check_version_stage(version_stage)
    return parse_refs(factory.config.env(env_name).secrets)


def _resolve(factory, env_name: str, version_stage: str):
    """Every value, or one error line; then a note when --version-stage did not apply to all."""
    from stageflow.secrets.refs import SSM, parse_refs, sources
    from stageflow.secrets.stores import resolve

    table = factory.config.env(env_name).secrets
    clients = {s: factory.aws.client(s) for s in sources(table)}
    secrets = resolve(env_name, table, version_stage=version_stage, **clients)
    refs = parse_refs(table)
    if version_stage != "AWSCURRENT" and any(r.source == SSM for r in refs):
        factory.reporter.info(
            "secrets",
            env_name,
            "--version-stage applies to Secrets Manager; parameters were read at their latest",
        )
    return secrets


def _validate(factory, env_name, *, version_stage, **_):
    refs = _prepare(factory, env_name, version_stage)
    secrets = _resolve(factory, env_name, version_stage)
    names = list(secrets)
    if not refs:
        human = f"secrets {env_name}: none configured (environments.{env_name}.secrets is empty)"
    else:
        human = "\n".join(
            [f"secrets {env_name}: all {len(refs)} references resolve ({version_stage})"]
            + [f"  {r.name} ← {r.text}" for r in refs]
        )
    factory.reporter.result(
        human,
        {
            "environment": env_name,
            "version_stage": version_stage,
            "ok": True,
            "names": names,
            "references": {r.name: r.text for r in refs},
        },
    )


def _exec(factory, env_name, *, args, version_stage, pristine, tf_vars, **_):
    from stageflow.report import Reporter
    from stageflow.secrets.sinks import exec_child, exec_env

    _prepare(factory, env_name, version_stage)
    secrets = _resolve(factory, env_name, version_stage)
    extra = {} if pristine else factory.child_env()
    env = exec_env(secrets, pristine=pristine, extra=extra, tf=tf_vars)
    reporter = factory.reporter
    factory.reporter.info(
        "secrets",
        env_name,
        f"running {args[0]} with {len(secrets)} secret"
        + ("s" if len(secrets) != 1 else "")
        + (" (pristine environment)" if pristine else ""),
    )
    # The child's stdout goes to our stdout, its stderr to our stderr, both redacted line by line.
    to_out = Reporter(err=reporter.out, redactor=reporter.redactor)
    to_err = Reporter(err=reporter.err, redactor=reporter.redactor)
    rc = exec_child(list(args), env, out=to_out.child, err=to_err.child)
    if rc:
        raise click.exceptions.Exit(rc)


def _env_file(factory, env_name, *, args, version_stage, **_):
    from stageflow.secrets.sinks import check_env_file_target, env_file_ignored, write_env_file

    _prepare(factory, env_name, version_stage)
    check_env_file_target(args[0])  # refuse before reading any secret
    secrets = _resolve(factory, env_name, version_stage)
    path = write_env_file(args[0], secrets)
    if env_file_ignored(path) is False:
        factory.reporter.warn(f"{path} is not ignored by git: add it to .gitignore")
    factory.reporter.result(
        f"secrets {env_name}: wrote {len(secrets)} values to {path} (mode 0600)",
        {"environment": env_name, "path": str(path), "mode": "0600", "names": list(secrets)},
    )


def _lambda(factory, env_name, *, version_stage, function_name, **_):
    from stageflow.config import FROM_TERRAFORM
    from stageflow.secrets.refs import env_var, sources
    from stageflow.secrets.sinks import update_lambda_env
    from stageflow.secrets.stores import resolve_pinned

    _prepare(factory, env_name, version_stage)
    function = function_name or factory.config.env(env_name).function
    if not function or function == FROM_TERRAFORM:
        raise UsageError(
            f"environment {env_name}: the function name comes from Terraform outputs",
            "pass --function NAME, or set environments." + env_name + ".function in stageflow.toml",
        )
    table = factory.config.env(env_name).secrets
    clients = {s: factory.aws.client(s) for s in sources(table)}
    _, pins = resolve_pinned(env_name, table, version_stage=version_stage, **clients)
    references = {env_var(name): ref for name, ref in pins.items()}
    # a value an older stageflow merged in under the secret's own name goes
    update = update_lambda_env(factory.aws.client("lambda"), function, {}, plain=references, drop=tuple(pins))
    factory.reporter.result(
        f"secrets {env_name}: lambda {function}: pinned {len(update.set)} references"
        + (f" ({', '.join(update.set)})" if update.set else "")
        + f", kept {len(update.kept)} others"
        + (f", removed {', '.join(update.removed)}" if update.removed else ""),
        {"environment": env_name, **update.to_json()},
    )
