"""Secrets from Secrets Manager and Parameter Store, handed to children and Lambda, never shown.

References live in ``stageflow.toml`` per environment::

    [environments.prod.secrets]
    DB_PASSWORD = "secretsmanager:svc/prod/database#password"   # a key of a JSON secret
    API_TOKEN   = "secretsmanager:svc/prod/api-token"            # the whole SecretString
    API_HOST    = "ssm:/svc/prod/api/host"                       # a parameter, decrypted

:func:`resolve` reads every reference (Secrets Manager at ``AWSCURRENT`` unless another stage is
asked for), registers each value with :data:`~stageflow.redact.REDACTOR` the moment it arrives, and
reports every reference that failed in one error: not found (exit 2) or denied/unavailable (exit 3).
Values are :class:`~stageflow.redact.Secret` objects that print as ``***``.

The helpers hand them on: :func:`child_env` (a child process's environment), :func:`tf_vars`
(``TF_VAR_*`` for Terraform, only ever in the child's environment), :func:`write_env_file` (mode
0600, atomic) and :func:`update_lambda_env` (merged into the function's variables).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageflow.errors import EnvironmentFailure, UsageError
from stageflow.redact import MIN_LEN, REDACTOR, Redactor, Secret

AWSCURRENT = "AWSCURRENT"
SECRETSMANAGER = "secretsmanager"
SSM = "ssm"
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Secret names: letters, digits and /_+=.@- ; a full ARN (with ':') is accepted too.
SM_ID_RE = re.compile(r"^(?:arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]+$")
SSM_PATH_RE = re.compile(r"^(?:/[A-Za-z0-9_.-]+)+$")
JSON_KEY_RE = re.compile(r"^[^#\s]+$")
VERSION_STAGE_RE = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,256}$")
SSM_BATCH = 10  # GetParameters takes at most 10 names

# botocore error codes, by what they mean for the user.
MISSING_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "ParameterNotFound",
        "ParameterVersionNotFound",
        "ParameterNotFoundException",
    }
)
DENIED_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "DecryptionFailure", "KMSAccessDeniedException"}
)
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)


# -- errors ---------------------------------------------------------------------------------------
class MalformedSecretReference(UsageError):
    def __init__(self, name: str, text: str, why: str):
        super().__init__(
            f"secret {name}: malformed reference {text!r}: {why}",
            "use 'secretsmanager:NAME[#KEY]' or 'ssm:/PATH'",
        )


class SecretsNotFound(UsageError):
    """One or more references do not resolve (exit 2). Lists all of them."""


class SecretsUnavailable(EnvironmentFailure):
    """One or more references were denied or could not be read (exit 3). Lists all problems."""


# -- references -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SecretRef:
    """One ``NAME = "reference"`` entry of ``environments.<env>.secrets``."""

    name: str  # the environment variable name the value is handed out as
    source: str  # "secretsmanager" or "ssm"
    id: str  # the secret id (name or ARN) or the parameter path
    key: str | None = None  # a key of a JSON secret (Secrets Manager only)

    @property
    def text(self) -> str:
        return f"{self.source}:{self.id}" + (f"#{self.key}" if self.key else "")

    def __str__(self) -> str:
        return f"{self.name} ({self.text})"


def parse_ref(name: str, text: str) -> SecretRef:
    """Parse ``secretsmanager:NAME[#KEY]`` or ``ssm:/PATH``; raise MalformedSecretReference."""
    if not ENV_NAME_RE.match(name or ""):
        raise MalformedSecretReference(name, text, "the name must be a valid environment variable name")
    if not isinstance(text, str):
        raise MalformedSecretReference(name, str(text), "must be a string")
    source, sep, rest = text.partition(":")
    if not sep or source not in (SECRETSMANAGER, SSM):
        raise MalformedSecretReference(name, text, "unknown source (secretsmanager or ssm)")
    if source == SSM:
        if "#" in rest:
            raise MalformedSecretReference(name, text, "'#KEY' is for Secrets Manager JSON secrets only")
        if not SSM_PATH_RE.match(rest):
            raise MalformedSecretReference(
                name, text, "a parameter path starts with '/' and has letters, digits, '_', '.', '-'"
            )
        return SecretRef(name, SSM, rest)
    secret_id, hash_, key = rest.partition("#")
    if not SM_ID_RE.match(secret_id):
        raise MalformedSecretReference(
            name, text, "a secret name has letters, digits and /_+=.@- (or is a full ARN)"
        )
    if hash_ and not JSON_KEY_RE.match(key):
        raise MalformedSecretReference(name, text, "the key after '#' must be non-empty, without spaces")
    return SecretRef(name, SECRETSMANAGER, secret_id, key or None)


def parse_refs(table: Mapping[str, str]) -> tuple[SecretRef, ...]:
    return tuple(parse_ref(name, text) for name, text in table.items())


def check_version_stage(stage: str) -> str:
    if not VERSION_STAGE_RE.match(stage or ""):
        raise UsageError(
            f"invalid --version-stage {stage!r}", "a staging label such as AWSCURRENT or AWSPENDING"
        )
    return stage


# -- fetching -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    ref: SecretRef
    kind: str  # "missing", "invalid", "denied" or "unavailable"
    detail: str

    def __str__(self) -> str:
        return f"{self.ref}: {self.detail}"


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _classify(ref: SecretRef, exc: Exception) -> Problem:
    """A botocore ClientError as a Problem; credential and connection failures end the run at once."""
    code = _error_code(exc)
    if code in CREDENTIAL_CODES:
        raise EnvironmentFailure(
            f"AWS rejected the credentials ({code})", "check AWS_PROFILE or your session"
        ) from None
    if code in MISSING_CODES:
        return Problem(ref, "missing", "not found")
    if code in DENIED_CODES:
        return Problem(ref, "denied", f"access denied ({code})")
    if code == "InvalidRequestException" and "delet" in str(exc).lower():
        return Problem(ref, "missing", "marked for deletion")
    return Problem(ref, "unavailable", f"could not be read ({code or type(exc).__name__})")


def _connection_failure(exc: Exception) -> EnvironmentFailure:
    return EnvironmentFailure(
        f"cannot reach AWS to read secrets: {type(exc).__name__}",
        "check the network, the region and the credentials",
    )


def _extract_key(ref: SecretRef, document: str) -> str | Problem:
    try:
        data = json.loads(document)
    except ValueError:
        return Problem(ref, "invalid", f"secret is not JSON, so it has no key {ref.key!r}")
    if not isinstance(data, dict):
        return Problem(ref, "invalid", f"secret is not a JSON object, so it has no key {ref.key!r}")
    if ref.key not in data:
        return Problem(ref, "missing", f"the secret has no key {ref.key!r}")
    value = data[ref.key]
    if value is None:
        return Problem(ref, "invalid", f"key {ref.key!r} is null")
    return value if isinstance(value, str) else json.dumps(value)


def _fetch_secretsmanager(client, refs, stage: str, redactor: Redactor, out: dict, problems: list) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    documents: dict[str, str | Problem] = {}
    for ref in refs:
        if ref.id not in documents:
            try:
                resp = client.get_secret_value(SecretId=ref.id, VersionStage=stage)
            except ClientError as exc:
                problem = _classify(ref, exc)
                if problem.kind == "missing" and stage != AWSCURRENT and problem.detail == "not found":
                    problem = Problem(ref, "missing", f"not found at version stage {stage}")
                documents[ref.id] = problem
            except BotoCoreError as exc:
                raise _connection_failure(exc) from None
            else:
                if resp.get("SecretString") is not None:
                    doc = resp["SecretString"]
                else:
                    try:
                        doc = bytes(resp.get("SecretBinary") or b"").decode("utf-8")
                    except UnicodeDecodeError:
                        doc = None
                if doc is None:
                    documents[ref.id] = Problem(ref, "invalid", "binary secret is not UTF-8 text")
                else:
                    redactor.add(doc)  # before anything else happens to it
                    documents[ref.id] = doc
        doc = documents[ref.id]
        if isinstance(doc, Problem):
            problems.append(Problem(ref, doc.kind, doc.detail))
            continue
        value = doc if ref.key is None else _extract_key(ref, doc)
        if isinstance(value, Problem):
            problems.append(value)
            continue
        redactor.add(value)
        out[ref.name] = value


def _fetch_ssm(client, refs, redactor: Redactor, out: dict, problems: list) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    paths = sorted({r.id for r in refs})
    values: dict[str, str | Problem] = {}

    def one(path: str) -> None:
        ref = next(r for r in refs if r.id == path)
        try:
            resp = client.get_parameter(Name=path, WithDecryption=True)
        except ClientError as exc:
            values[path] = _classify(ref, exc)
        else:
            values[path] = resp["Parameter"]["Value"]
            redactor.add(values[path])

    for i in range(0, len(paths), SSM_BATCH):
        batch = paths[i : i + SSM_BATCH]
        try:
            resp = client.get_parameters(Names=batch, WithDecryption=True)
        except ClientError as exc:
            if _error_code(exc) in CREDENTIAL_CODES:
                _classify(refs[0], exc)  # raises
            for path in batch:  # find out which ones, one by one
                try:
                    one(path)
                except BotoCoreError as exc2:
                    raise _connection_failure(exc2) from None
            continue
        except BotoCoreError as exc:
            raise _connection_failure(exc) from None
        for param in resp.get("Parameters", []):
            redactor.add(param["Value"])
            values[param["Name"]] = param["Value"]
        for path in resp.get("InvalidParameters", []):
            values.setdefault(path, Problem(SecretRef("?", SSM, path), "missing", "not found"))
    for ref in refs:
        value = values.get(ref.id) or Problem(ref, "missing", "not found")
        if isinstance(value, Problem):
            problems.append(Problem(ref, value.kind, value.detail))
        else:
            out[ref.name] = value


def fetch(
    refs: Sequence[SecretRef],
    *,
    secretsmanager=None,
    ssm=None,
    version_stage: str = AWSCURRENT,
    redactor: Redactor = REDACTOR,
) -> tuple[dict[str, Secret], list[Problem]]:
    """Read every reference; return the values found and every problem. Values are registered with
    the redactor as they arrive. Clients are needed only for the sources the references use."""
    found: dict[str, str] = {}
    problems: list[Problem] = []
    sm_refs = [r for r in refs if r.source == SECRETSMANAGER]
    ssm_refs = [r for r in refs if r.source == SSM]
    if sm_refs:
        _fetch_secretsmanager(secretsmanager, sm_refs, version_stage, redactor, found, problems)
    if ssm_refs:
        _fetch_ssm(ssm, ssm_refs, redactor, found, problems)
    for name, value in list(found.items()):
        if len(value) < MIN_LEN:
            ref = next(r for r in refs if r.name == name)
            problems.append(
                Problem(ref, "invalid", f"value shorter than {MIN_LEN} characters cannot be masked in output")
            )
            del found[name]
    order = {r.name: i for i, r in enumerate(refs)}
    problems.sort(key=lambda p: order.get(p.ref.name, len(order)))
    return {r.name: Secret(found[r.name]) for r in refs if r.name in found}, problems


def raise_for_problems(env_name: str, total: int, problems: Sequence[Problem]) -> None:
    """One error naming every failed reference: exit 3 if any was denied or unreadable, else 2."""
    if not problems:
        return
    listing = "; ".join(str(p) for p in problems)
    message = f"environment {env_name}: {len(problems)} of {total} secrets failed: {listing}"
    if any(p.kind in ("denied", "unavailable") for p in problems):
        raise SecretsUnavailable(
            message, "check the IAM policy for secretsmanager:GetSecretValue / ssm:GetParameters"
        )
    raise SecretsNotFound(message, f"create them, or fix environments.{env_name}.secrets in stageflow.toml")


def resolve(factory, env_name: str, *, version_stage: str = AWSCURRENT) -> dict[str, Secret]:
    """All secrets of an environment as ``{NAME: Secret}``, or one error listing every failure."""
    check_version_stage(version_stage)
    env = factory.config.env(env_name)
    refs = parse_refs(env.secrets)
    if not refs:
        return {}
    sources = {r.source for r in refs}
    secrets, problems = fetch(
        refs,
        secretsmanager=factory.aws.client("secretsmanager") if SECRETSMANAGER in sources else None,
        ssm=factory.aws.client("ssm") if SSM in sources else None,
        version_stage=version_stage,
    )
    raise_for_problems(env_name, len(refs), problems)
    return secrets


# -- handing values on ----------------------------------------------------------------------------
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


def _git_tracked(path: Path) -> bool:
    git = shutil.which("git")
    if git is None:
        return False
    proc = subprocess.run(
        [git, "-C", str(path.parent), "ls-files", "--error-unmatch", "--", path.name],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.returncode == 0


def _git_ignored(path: Path) -> bool | None:
    """True/False inside a git work tree; None outside one (or without git)."""
    git = shutil.which("git")
    if git is None:
        return None
    inside = subprocess.run(
        [git, "-C", str(path.parent), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    proc = subprocess.run(
        [git, "-C", str(path.parent), "check-ignore", "-q", "--", path.name],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return proc.returncode == 0


def check_env_file_target(path: Path) -> Path:
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
    if _git_tracked(path):
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
    return _git_ignored(Path(os.path.abspath(path)))


# -- exec -----------------------------------------------------------------------------------------
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


def run_streaming(argv: Sequence[str], env: Mapping[str, str], *, out, err, cwd=None) -> int:
    """Run ``argv`` with ``env``; pass its stdout and stderr line by line through the given callbacks
    (reporters that redact), and return its exit code. The program is looked up on our own PATH, so
    a pristine environment without PATH still finds it."""
    if not argv:
        raise UsageError("exec needs a command", "stageflow secrets ENV exec -- CMD [ARGS...]")
    program = shutil.which(argv[0])
    if program is None:
        raise UsageError(f"command not found: {argv[0]}", "check the name or your PATH")
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv from the user, never through a shell
            [program, *argv[1:]],
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror}", "check the command") from None

    def pump(stream, sink) -> None:
        with stream:
            for line in stream:
                sink(line)

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        # The child got the same SIGINT (same process group); give it time to finish.
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    for t in threads:
        t.join(timeout=10)
    return rc if rc >= 0 else 128 - rc


# -- Lambda ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LambdaEnvUpdate:
    function: str
    set: tuple[str, ...]  # names written (values never reported)
    kept: tuple[str, ...]  # other variables left as they were

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "set": list(self.set), "kept": list(self.kept)}


class _WaiterResponse:
    def __init__(self, exc):
        self.response = getattr(exc, "last_response", None) or {}


def _wait_updated(client, function_name: str) -> None:
    waiter = client.get_waiter("function_updated_v2")
    waiter.wait(FunctionName=function_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


def update_lambda_env(
    factory_or_client, function_name: str, secrets: Mapping[str, Secret]
) -> LambdaEnvUpdate:
    """Merge the secrets into the function's ``Environment.Variables`` without dropping other keys,
    guarded by the revision id against a concurrent change, and wait until the update is done."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    client = (
        factory_or_client.aws.client("lambda") if hasattr(factory_or_client, "aws") else factory_or_client
    )
    try:
        for attempt in range(3):
            _wait_updated(client, function_name)
            conf = client.get_function_configuration(FunctionName=function_name)
            current = dict((conf.get("Environment") or {}).get("Variables") or {})
            merged = {**current, **child_env(secrets)}
            kwargs: dict[str, Any] = {"FunctionName": function_name, "Environment": {"Variables": merged}}
            if conf.get("RevisionId"):
                kwargs["RevisionId"] = conf["RevisionId"]
            try:
                client.update_function_configuration(**kwargs)
            except ClientError as exc:
                if _error_code(exc) == "PreconditionFailedException" and attempt < 2:
                    continue  # changed under us: read again and merge again
                raise
            _wait_updated(client, function_name)
            kept = tuple(sorted(k for k in current if k not in secrets))
            return LambdaEnvUpdate(function_name, tuple(secrets), kept)
    except ClientError as exc:
        code = _error_code(exc)
        if code == "ResourceNotFoundException":
            raise UsageError(
                f"Lambda function {function_name!r} not found", "check --function or deploy first"
            ) from None
        if code in CREDENTIAL_CODES | DENIED_CODES:
            raise EnvironmentFailure(
                f"Lambda function {function_name}: access denied ({code})",
                "the caller needs lambda:GetFunctionConfiguration and lambda:UpdateFunctionConfiguration",
            ) from None
        raise EnvironmentFailure(
            f"Lambda function {function_name}: update failed ({code})", "nothing was merged; try again"
        ) from None
    except WaiterError as exc:
        if _error_code(_WaiterResponse(exc)) == "ResourceNotFoundException":
            raise UsageError(
                f"Lambda function {function_name!r} not found", "check --function or deploy first"
            ) from None
        raise EnvironmentFailure(
            f"Lambda function {function_name}: the update did not finish", "check the function in AWS"
        ) from None
    except BotoCoreError as exc:
        raise _connection_failure(exc) from None
    raise EnvironmentFailure(  # pragma: no cover - three revision conflicts in a row
        f"Lambda function {function_name} kept changing while we updated it", "try again"
    )


__all__ = [
    "AWSCURRENT",
    "LambdaEnvUpdate",
    "MalformedSecretReference",
    "Problem",
    "SecretRef",
    "SecretsNotFound",
    "SecretsUnavailable",
    "check_env_file_target",
    "child_env",
    "exec_env",
    "fetch",
    "format_env_line",
    "parse_ref",
    "parse_refs",
    "resolve",
    "run_streaming",
    "sensitive_var_names",
    "tf_var_name",
    "tf_vars",
    "update_lambda_env",
    "write_env_file",
]
