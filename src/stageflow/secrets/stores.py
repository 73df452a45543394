"""Reading secrets: Secrets Manager and Parameter Store.

:func:`resolve` reads every reference of an environment (Secrets Manager at ``AWSCURRENT`` unless
another stage is asked for), registers each value with :data:`~stageflow.redact.REDACTOR` the moment
it arrives, and reports every reference that failed in one error: not found (exit 2) or
denied/unavailable (exit 3). Values are :class:`~stageflow.redact.Secret` objects that print as ``***``.
Rejected credentials and an unreachable endpoint end the read at once, through
:func:`stageflow.aws.aws_error`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stageflow.aws import aws_error
from stageflow.errors import EnvironmentFailure, UsageError
from stageflow.redact import MIN_LEN, REDACTOR, Redactor, Secret
from stageflow.secrets.refs import AWSCURRENT, SECRETSMANAGER, SSM, SecretRef, check_version_stage, parse_refs

SSM_BATCH = 10  # GetParameters takes at most 10 names
READING = "reading secrets"

# botocore error codes, by what they mean for one reference.
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


class SecretsNotFound(UsageError):
    """One or more references do not resolve (exit 2). Lists all of them."""


class SecretsUnavailable(EnvironmentFailure):
    """One or more references were denied or could not be read (exit 3). Lists all problems."""


@dataclass(frozen=True)
class Problem:
    ref: SecretRef
    kind: str  # "missing", "invalid", "denied" or "unavailable"
    detail: str

    def __str__(self) -> str:
        return f"{self.ref}: {self.detail}"


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore error ('' when it has none)."""
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def _classify(ref: SecretRef, exc: Exception) -> Problem:
    """A botocore ClientError as a Problem; rejected credentials end the run at once."""
    code = error_code(exc)
    if code in CREDENTIAL_CODES:
        raise aws_error(exc, READING) from None
    if code in MISSING_CODES:
        return Problem(ref, "missing", "not found")
    if code in DENIED_CODES:
        return Problem(ref, "denied", f"access denied ({code})")
    if code == "InvalidRequestException" and "delet" in str(exc).lower():
        return Problem(ref, "missing", "marked for deletion")
    return Problem(ref, "unavailable", f"could not be read ({code or type(exc).__name__})")


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


def _secret_document(
    client, ref: SecretRef, stage: str, redactor: Redactor, pins: dict | None = None
) -> str | Problem:
    """The whole secret (``SecretString``, or ``SecretBinary`` as UTF-8 text), registered at once;
    its ARN and VersionId go into ``pins`` (``{secret id: (arn, version id)}``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = client.get_secret_value(SecretId=ref.id, VersionStage=stage)
    except ClientError as exc:
        problem = _classify(ref, exc)
        if problem.kind == "missing" and stage != AWSCURRENT and problem.detail == "not found":
            problem = Problem(ref, "missing", f"not found at version stage {stage}")
        return problem
    except BotoCoreError as exc:
        raise aws_error(exc, READING) from None
    if resp.get("SecretString") is not None:
        doc = resp["SecretString"]
    else:
        try:
            doc = bytes(resp.get("SecretBinary") or b"").decode("utf-8")
        except UnicodeDecodeError:
            return Problem(ref, "invalid", "binary secret is not UTF-8 text")
    redactor.add(doc)  # before anything else happens to it
    if pins is not None and resp.get("ARN") and resp.get("VersionId"):
        pins[ref.id] = (resp["ARN"], resp["VersionId"])
    return doc


def _fetch_secretsmanager(
    client, refs, stage: str, redactor: Redactor, out: dict, problems: list, pins: dict | None = None
) -> None:
    documents: dict[str, str | Problem] = {}
    for ref in refs:
        if ref.id not in documents:
            documents[ref.id] = _secret_document(client, ref, stage, redactor, pins)
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


def _parameter_one_by_one(
    client, ref: SecretRef, redactor: Redactor, pins: dict | None = None
) -> str | Problem:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = client.get_parameter(Name=ref.id, WithDecryption=True)
    except ClientError as exc:
        return _classify(ref, exc)
    except BotoCoreError as exc:
        raise aws_error(exc, READING) from None
    value = resp["Parameter"]["Value"]
    redactor.add(value)
    if pins is not None and resp["Parameter"].get("Version") is not None:
        pins[ref.id] = (ref.id, str(resp["Parameter"]["Version"]))
    return value


def _parameters(client, refs, redactor: Redactor, pins: dict | None = None) -> dict[str, str | Problem]:
    """``{path: value or Problem}``: batches of GetParameters; a batch that fails is asked again one
    parameter at a time to find out which ones."""
    from botocore.exceptions import BotoCoreError, ClientError

    first = {}
    for ref in refs:
        first.setdefault(ref.id, ref)
    paths = sorted(first)
    values: dict[str, str | Problem] = {}
    for i in range(0, len(paths), SSM_BATCH):
        batch = paths[i : i + SSM_BATCH]
        try:
            resp = client.get_parameters(Names=batch, WithDecryption=True)
        except ClientError as exc:
            if error_code(exc) in CREDENTIAL_CODES:
                raise aws_error(exc, READING) from None
            for path in batch:
                values[path] = _parameter_one_by_one(client, first[path], redactor, pins)
            continue
        except BotoCoreError as exc:
            raise aws_error(exc, READING) from None
        for param in resp.get("Parameters", []):
            redactor.add(param["Value"])
            values[param["Name"]] = param["Value"]
            if pins is not None and param.get("Version") is not None:
                pins[param["Name"]] = (param["Name"], str(param["Version"]))
    return values


def _fetch_ssm(client, refs, redactor: Redactor, out: dict, problems: list, pins: dict | None = None) -> None:
    values = _parameters(client, refs, redactor, pins)
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
    pins: dict | None = None,
) -> tuple[dict[str, Secret], list[Problem]]:
    """Read every reference; return the values found and every problem. Values are registered with
    the redactor as they arrive. Clients are needed only for the sources the references use. With
    ``pins`` (a dict), what each value was read from goes into it: ``{secret id or parameter path:
    (ARN or path, version)}`` (:func:`pinned_reference`)."""
    found: dict[str, str] = {}
    problems: list[Problem] = []
    sm_refs = [r for r in refs if r.source == SECRETSMANAGER]
    ssm_refs = [r for r in refs if r.source == SSM]
    if sm_refs:
        _fetch_secretsmanager(secretsmanager, sm_refs, version_stage, redactor, found, problems, pins)
    if ssm_refs:
        _fetch_ssm(ssm, ssm_refs, redactor, found, problems, pins)
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


def pinned_reference(ref: SecretRef, where: str, version: str) -> str:
    """The reference the function's environment carries: the value's exact version, never the value.
    ``secretsmanager:ARN?versionId=ID[#KEY]`` or ``ssm:/PATH:VERSION`` (read by the runtime helper,
    ``stageflow/data/stageflow_secrets.py``)."""
    if ref.source == SSM:
        return f"ssm:{where}:{version}"
    return f"secretsmanager:{where}?versionId={version}" + (f"#{ref.key}" if ref.key else "")


def resolve_pinned(
    env_name: str,
    references: Mapping[str, str],
    *,
    secretsmanager=None,
    ssm=None,
    version_stage: str = AWSCURRENT,
) -> tuple[dict[str, Secret], dict[str, str]]:
    """Every secret of the environment read at its current version (values registered with the
    redactor, one error listing every failure, as :func:`resolve`), and ``{NAME: pinned reference}``."""
    refs = parse_refs(references)
    if not refs:
        return {}, {}
    check_version_stage(version_stage)
    pins: dict = {}
    secrets, problems = fetch(
        refs, secretsmanager=secretsmanager, ssm=ssm, version_stage=version_stage, pins=pins
    )
    missing = [r for r in refs if r.name in secrets and r.id not in pins]
    problems += [Problem(r, "unavailable", "the store did not say which version it read") for r in missing]
    raise_for_problems(env_name, len(refs), problems)
    return secrets, {r.name: pinned_reference(r, *pins[r.id]) for r in refs}


def resolve(
    env_name: str,
    references: Mapping[str, str],
    *,
    secretsmanager=None,
    ssm=None,
    version_stage: str = AWSCURRENT,
) -> dict[str, Secret]:
    """All secrets of an environment (its ``secrets`` table) as ``{NAME: Secret}``, or one error
    listing every failure. Pass a client for each service in :func:`~stageflow.secrets.refs.sources`."""
    check_version_stage(version_stage)
    refs = parse_refs(references)
    if not refs:
        return {}
    secrets, problems = fetch(refs, secretsmanager=secretsmanager, ssm=ssm, version_stage=version_stage)
    raise_for_problems(env_name, len(refs), problems)
    return secrets
