"""Handing secret values on: a child process, an env file, a Lambda function's environment.

:func:`child_env` and :func:`tf_vars` (``TF_VAR_*`` for Terraform, only ever in the child's
environment) build environments; :func:`exec_child` runs a command with one and streams its output
through the caller's (redacting) callbacks; :func:`write_env_file` writes mode 0600, atomically;
:func:`update_lambda_env` merges the values into the function's variables, and
:func:`register_deployed_values` masks the values it holds before Terraform prints them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageflow import git, process
from stageflow.aws import aws_error
from stageflow.errors import EnvironmentFailure, UsageError
from stageflow.redact import REDACTOR, Redactor, Secret
from stageflow.secrets.stores import error_code


# -- environments ---------------------------------------------------------------------------------
def child_env(secrets: Mapping[str, Secret]) -> dict[str, str]:
    """``{NAME: value}`` for a child process's environment."""
    return {name: s.reveal() for name, s in secrets.items()}


def tf_var_name(name: str) -> str:
    return f"TF_VAR_{name.lower()}"


def tf_vars(secrets: Mapping[str, Secret]) -> dict[str, str]:
    """``{TF_VAR_<name lowercased>: value}``: put these in Terraform's child environment only, never
    in a -var flag or a .tfvars file. Declare the variables ``sensitive = true`` in Terraform."""
    return {tf_var_name(name): s.reveal() for name, s in secrets.items()}


def sensitive_var_names(secrets: Mapping[str, str] | Sequence[str]) -> frozenset[str]:
    """Terraform variable names (lowercased) that carry secrets: plan summaries show them as sensitive."""
    return frozenset(name.lower() for name in secrets)


def exec_env(
    secrets: Mapping[str, Secret],
    *,
    pristine: bool,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    tf: bool = False,
) -> dict[str, str]:
    """The child's environment: the secrets alone with ``pristine`` (like chamber: not even PATH),
    else the current environment plus ``extra`` (the local-mode AWS settings) plus the secrets."""
    env: dict[str, str] = {}
    if not pristine:
        env.update(os.environ if base is None else base)
        env.update(extra or {})
    env.update(child_env(secrets))
    if tf:
        env.update(tf_vars(secrets))
    return env


# -- exec -----------------------------------------------------------------------------------------
def exec_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    out: Callable[[str], None],
    err: Callable[[str], None],
    cwd: str | Path | None = None,
    runner: process.Runner = process.RUNNER,
) -> int:
    """Run ``argv`` with ``env``; pass its stdout and stderr line by line (without the newline) through
    ``out`` and ``err`` (reporters that redact), and return its exit code (128+N for signal N). The
    program is looked up on our own PATH, so a pristine environment without PATH still finds it."""
    if not argv:
        raise UsageError("exec needs a command", "stageflow secrets ENV exec -- CMD [ARGS...]")
    program = shutil.which(argv[0])
    if program is None:
        raise UsageError(f"command not found: {argv[0]}", "check the name or your PATH")
    streams = {"stdout": out, "stderr": err}
    try:
        result = runner(
            [program, *argv[1:]],
            env=dict(env),
            cwd=cwd,
            ok_codes=None,
            on_line=lambda line, stream: streams[stream](line),
            interactive=True,  # the program keeps our terminal: it may prompt, Ctrl-C reaches it
        )
    except process.CommandNotFound as exc:
        raise UsageError(exc.message, "check the command") from None
    rc = result.returncode
    return rc if rc >= 0 else 128 - rc


# -- env file -------------------------------------------------------------------------------------
_BARE_RE = re.compile(r"^[A-Za-z0-9_./:@%+,=-]*$")


def format_env_line(name: str, value: str) -> str:
    """``NAME=value`` in the dotenv dialect read by python-dotenv and docker compose.

    Bare when the value is plain; single-quoted (literal) when it has no quote or newline; otherwise
    double-quoted with ``\\\\``, ``\\"``, ``\\n`` and ``\\$`` escaped.
    """
    if _BARE_RE.match(value):
        return f"{name}={value}"
    if "'" not in value and "\n" not in value and "\r" not in value:
        return f"{name}='{value}'"
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("$", "\\$")
    )
    return f'{name}="{escaped}"'


def check_env_file_target(path: str | Path) -> Path:
    """Refuse a target that is not a plain private file we may replace; return the absolute path."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        raise UsageError(f"env file {path}: directory {path.parent} does not exist", "create it first")
    if path.is_symlink():
        raise UsageError(f"env file {path} is a symbolic link; refusing to replace it", "pass the real path")
    if path.exists():
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"env file {path} exists and is not a regular file", "pass a file path")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise UsageError(
                f"env file {path} exists with mode {mode:04o}, wider than 0600; refusing to overwrite it",
                f"remove it or chmod 600 {path.name}",
            )
    if git.is_tracked(path):
        raise UsageError(
            f"env file {path} is tracked by git; refusing to write secrets into it",
            f"choose another path, or git rm --cached {path.name} and add it to .gitignore",
        )
    return path


def write_env_file(path: str | Path, secrets: Mapping[str, Secret]) -> Path:
    """Write ``NAME=value`` lines, mode 0600, atomically (temp file in the same directory + rename)."""
    target = check_env_file_target(Path(path))
    content = "".join(format_env_line(n, s.reveal()) + "\n" for n, s in secrets.items())
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp creates it 0600
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        check_env_file_target(target)  # nothing changed under us since the first check
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target


def env_file_ignored(path: str | Path) -> bool | None:
    """Whether git ignores the file: None outside a work tree (or without git)."""
    return git.is_ignored(Path(os.path.abspath(path)))


# -- Lambda ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LambdaEnvUpdate:
    function: str
    set: tuple[str, ...]  # names written (values never reported)
    kept: tuple[str, ...]  # other variables left as they were
    removed: tuple[str, ...] = ()  # variables outside ``only`` (see update_lambda_env)
    changed: bool = True  # False: the environment already held exactly this (nothing written)

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "set": list(self.set),
            "kept": list(self.kept),
            "removed": list(self.removed),
            "changed": self.changed,
        }


def _wait_updated(client, function_name: str) -> None:
    waiter = client.get_waiter("function_updated_v2")
    waiter.wait(FunctionName=function_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


def _merge_once(
    client,
    function_name: str,
    secrets: Mapping[str, Secret],
    plain: Mapping[str, str],
    only: Collection[str] | None,
    drop: Collection[str] = (),
) -> LambdaEnvUpdate | None:
    """One read-merge-write guarded by the revision id; None when the function changed under us."""
    from botocore.exceptions import ClientError

    _wait_updated(client, function_name)
    conf = client.get_function_configuration(FunctionName=function_name)
    current = dict((conf.get("Environment") or {}).get("Variables") or {})
    kept = {k: v for k, v in current.items() if (only is None or k in only) and k not in drop}
    merged = {**kept, **plain, **child_env(secrets)}
    written = (*secrets, *(n for n in plain if n not in secrets))
    others = tuple(sorted(k for k in kept if k not in written))
    removed = tuple(sorted(set(current) - set(kept)))
    if merged == current:
        return LambdaEnvUpdate(function_name, tuple(written), others, removed, changed=False)
    kwargs: dict[str, Any] = {"FunctionName": function_name, "Environment": {"Variables": merged}}
    if conf.get("RevisionId"):
        kwargs["RevisionId"] = conf["RevisionId"]
    try:
        client.update_function_configuration(**kwargs)
    except ClientError as exc:
        if error_code(exc) == "PreconditionFailedException":
            return None  # changed under us: read again and merge again
        raise
    _wait_updated(client, function_name)
    return LambdaEnvUpdate(function_name, tuple(written), others, removed)


def _not_found(function_name: str) -> UsageError:
    return UsageError(f"Lambda function {function_name!r} not found", "check --function or deploy first")


def update_lambda_env(
    client,
    function_name: str,
    secrets: Mapping[str, Secret],
    *,
    plain: Mapping[str, str] | None = None,
    only: Collection[str] | None = None,
    drop: Collection[str] = (),
) -> LambdaEnvUpdate:
    """Merge the secrets (and the ``plain`` variables) into the function's ``Environment.Variables``
    (``client``: a Lambda client), guarded by the revision id against a concurrent change, and wait
    until the update is done. Other keys are kept, unless ``only`` names the keys the environment may
    hold: then the others are removed; names in ``drop`` are removed too (a secret's value left under
    its own name). Nothing is written when the environment already holds it."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    doing = f"Lambda function {function_name}: merging the secrets into its environment"
    try:
        for _attempt in range(3):
            update = _merge_once(client, function_name, secrets, dict(plain or {}), only, drop)
            if update is not None:
                return update
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise _not_found(function_name) from None
        raise aws_error(exc, doing) from None
    except WaiterError as exc:
        if ((exc.last_response or {}).get("Error") or {}).get("Code") == "ResourceNotFoundException":
            raise _not_found(function_name) from None
        raise EnvironmentFailure(
            f"Lambda function {function_name}: the update did not finish", "check the function in AWS"
        ) from None
    except BotoCoreError as exc:
        raise aws_error(exc, doing) from None
    raise EnvironmentFailure(  # three revision conflicts in a row
        f"Lambda function {function_name} kept changing while we updated it", "try again"
    )


def register_deployed_values(
    client, function_name: str, names: Collection[str], redactor: Redactor = REDACTOR
) -> None:
    """Register with the redactor the values the function's environment holds now under ``names``
    (the *deployed* ones: a value rotated since is no longer fetched). Best effort: a function that
    cannot be read has nothing to register."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cfg = client.get_function_configuration(FunctionName=function_name)
    except (BotoCoreError, ClientError):
        return
    for name, value in ((cfg.get("Environment") or {}).get("Variables") or {}).items():
        if name in names and value:
            redactor.add(value)
