"""`stageflow secrets ENV rotate NAME`: a new value stored as a new version of the secret, then shipped
as a new function version through the canary (the function's environment pinned to the new version).

Exit codes: 2 for an unknown NAME, a bad --length, a bad value on stdin, an environment never deployed
or a secret that does not exist (nothing written); 3 when the store refuses or cannot be reached; 4
when the canary rejects the new version (traffic stays on the previous version and its reference). A
rollback later brings the previous version, and with it the previous reference, back.
"""

from __future__ import annotations

import sys

from stageflow.errors import UsageError


def rotate(factory, env_name: str, *, args, stdin: bool, length: int, **_) -> None:
    from stageflow.function_config import wanted, with_environment, write_environment
    from stageflow.secrets import rotate as R
    from stageflow.secrets.refs import parse_refs

    table = factory.config.env(env_name).secrets
    refs = {r.name: r for r in parse_refs(table)}
    if len(args) != 1:
        raise UsageError("rotate needs exactly one NAME", "stageflow secrets ENV rotate NAME [--stdin]")
    name = args[0]
    if name not in refs:
        known = ", ".join(sorted(refs)) or f"none: environments.{env_name}.secrets is empty"
        raise UsageError(f"environment {env_name}: no secret {name!r}", f"configured: {known}")
    R.check_length(length)
    outputs = factory.outputs_store.get(env_name)  # never deployed: exit 2 before anything is written
    if stdin and sys.stdin.isatty():
        factory.reporter.info("secrets", env_name, f"type the new value of {name}, then Enter")
    value = R.new_value(sys.stdin if stdin else None, length=length)
    ref = refs[name]
    rotated = R.store(ref, value, **{ref.source: factory.aws.client(ref.source)})
    how = "read from stdin" if stdin else "generated"
    factory.reporter.info("secrets", env_name, f"{name}: new version {rotated.version} stored ({how})")
    pins = factory.secret_store.resolve_pinned(env_name)[1]
    # stageflow.toml's plain variables and the root's function_environment (kept, never removed)
    spec = with_environment({"": wanted(factory.config, env_name)}, outputs.function_environment)[""]
    for fn in outputs.functions:
        write_environment(
            factory.secret_store,
            fn.function_name,
            pins,
            spec,
            say=lambda line: factory.reporter.info("secrets", env_name, line),
        )
    _ship(factory, env_name, rotated)


def _ship(factory, env_name: str, rotated) -> None:
    """The canary, as `stageflow canary ENV`: the new reference is a configuration change, so a new
    version is published and baked; gates and approvals as configured (never prompting)."""
    from stageflow.commands.canary import _git_commit, _outcome_json, report_outcome
    from stageflow.deploy import canary

    res = canary.start(
        factory.environment(env_name), factory.config, commit=_git_commit(factory), interactive=False
    )
    if res.outcome is None:  # the function already pinned this version (a concurrent deploy shipped it)
        factory.reporter.result(
            f"{env_name}: {rotated.name} rotated; nothing to deploy: {res.published.reason}",
            {"environment": env_name, "rotated": rotated.to_json(), "phase": "no_change"},
        )
        return
    factory.reporter.info(
        "secrets", env_name, f"{rotated.name}: shipped as v{_outcome_json(res.outcome)['version']}"
    )
    report_outcome(factory, res.outcome)
