"""Rotation: a new value stored as a new version of the secret (Secrets Manager) or parameter (SSM).

:func:`new_value` generates one or reads it from a stream (stdin; never argv); :func:`store` writes it
as a new version and returns where, so the caller can pin the function to it. The value is registered
with the redactor before anything else happens to it. Shipping the new reference (a new function
version through the canary) is the command's job (``stageflow secrets ENV rotate NAME``).
"""

from __future__ import annotations

import json
import secrets as _random
from dataclasses import dataclass
from typing import IO

from stageflow.aws import aws_error
from stageflow.errors import UsageError
from stageflow.redact import MIN_LEN, REDACTOR, Redactor, Secret
from stageflow.secrets.refs import SSM, SecretRef
from stageflow.secrets.stores import error_code

GENERATED_LENGTH = 40  # characters of token_urlsafe: ~240 bits
MIN_LENGTH, MAX_LENGTH = 16, 4096
MAX_STDIN = 64 * 1024  # Secrets Manager's limit for a SecretString


@dataclass(frozen=True)
class Rotated:
    name: str
    reference: str  # the configured reference (no value)
    version: str  # the new VersionId or parameter version

    def to_json(self) -> dict:
        return {"name": self.name, "reference": self.reference, "version": self.version}


def check_length(length: int) -> int:
    if not isinstance(length, int) or not MIN_LENGTH <= length <= MAX_LENGTH:
        raise UsageError(
            f"--length must be between {MIN_LENGTH} and {MAX_LENGTH}, got {length}", "e.g. --length 40"
        )
    return length


def new_value(
    stream: IO[str] | None, *, length: int = GENERATED_LENGTH, redactor: Redactor = REDACTOR
) -> Secret:
    """A generated value (``length`` URL-safe characters), or the text read from ``stream`` (one
    trailing newline removed). Refused (exit 2): empty, shorter than the redactor can mask, too long,
    more than one line."""
    if stream is None:
        value = _random.token_urlsafe(length)[:length]
    else:
        value = stream.read(MAX_STDIN + 1)
        if value.endswith("\n"):
            value = value[:-1]
        if value.endswith("\r"):
            value = value[:-1]
        if len(value) > MAX_STDIN:
            raise UsageError(f"the new value is longer than {MAX_STDIN} characters", "pipe a shorter value")
        if "\n" in value or "\r" in value:
            raise UsageError("the new value has more than one line", "pipe exactly one line on stdin")
        if len(value) < MIN_LEN:
            raise UsageError(
                f"the new value is shorter than {MIN_LEN} characters (it could not be masked in output)",
                "pipe a longer value, or omit --stdin to generate one",
            )
    redactor.add(value)
    return Secret(value)


def store(
    ref: SecretRef, value: Secret, *, secretsmanager=None, ssm=None, redactor: Redactor = REDACTOR
) -> Rotated:
    """Store ``value`` as a new version of what ``ref`` names; for ``secretsmanager:NAME#KEY`` the
    other keys of the JSON document are kept. AWS errors: exit 3 (denied, unreachable), a secret or
    parameter that does not exist: exit 2."""
    from botocore.exceptions import BotoCoreError, ClientError

    doing = f"rotating {ref.name} ({ref.text})"
    try:
        if ref.source == SSM:
            current = ssm.get_parameter(Name=ref.id, WithDecryption=False)["Parameter"]
            resp = ssm.put_parameter(
                Name=ref.id, Value=value.reveal(), Type=current.get("Type", "SecureString"), Overwrite=True
            )
            return Rotated(ref.name, ref.text, str(resp["Version"]))
        text = value.reveal()
        if ref.key is not None:
            doc = secretsmanager.get_secret_value(SecretId=ref.id)["SecretString"]
            redactor.add(doc)
            try:
                data = json.loads(doc)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise UsageError(f"{doc_name(ref)} is not a JSON object", "fix the secret or the reference")
            data[ref.key] = text
            text = json.dumps(data)
            redactor.add(text)
        resp = secretsmanager.put_secret_value(SecretId=ref.id, SecretString=text)
        return Rotated(ref.name, ref.text, resp["VersionId"])
    except ClientError as exc:
        if error_code(exc) in ("ResourceNotFoundException", "ParameterNotFound"):
            raise UsageError(f"{doc_name(ref)} not found", "create it first (docs/secrets.md)") from None
        raise aws_error(exc, doing) from None
    except BotoCoreError as exc:
        raise aws_error(exc, doing) from None


def doc_name(ref: SecretRef) -> str:
    return f"{'parameter' if ref.source == SSM else 'secret'} {ref.id} ({ref.name})"
