"""The one grammar of secret references, used by the configuration and by the secrets stores.

References live in ``stageflow.toml`` per environment::

    [environments.prod.secrets]
    DB_PASSWORD = "secretsmanager:svc/prod/database#password"   # a key of a JSON secret
    API_TOKEN   = "secretsmanager:svc/prod/api-token"            # the whole SecretString
    API_HOST    = "ssm:/svc/prod/api/host"                       # a parameter, decrypted

:func:`parse_ref` turns one entry into a :class:`SecretRef` or raises
:class:`MalformedSecretReference` (exit 2); ``config.py`` runs it over every entry when the file is
loaded, so a malformed reference never gets further than that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from stageflow.errors import UsageError

AWSCURRENT = "AWSCURRENT"
# A function's environment carries ``STAGEFLOW_SECRET_<NAME> = <pinned reference>``, never a value; the
# service reads it with stageflow/data/stageflow_secrets.py (the same prefix, kept in step by a test).
ENV_PREFIX = "STAGEFLOW_SECRET_"
SECRETSMANAGER = "secretsmanager"
SSM = "ssm"
REFERENCE_FORMS = "'secretsmanager:NAME[#KEY]' or 'ssm:/PATH'"
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Secret names: letters, digits and /_+=.@- ; a full ARN (with ':') is accepted too.
SM_ID_RE = re.compile(r"^(?:arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]+$")
SSM_PATH_RE = re.compile(r"^(?:/[A-Za-z0-9_.-]+)+$")
JSON_KEY_RE = re.compile(r"^[^#\s]+$")
VERSION_STAGE_RE = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,256}$")


class MalformedSecretReference(UsageError):
    def __init__(self, name: str, text: str, why: str):
        super().__init__(f"secret {name}: malformed reference {text!r}: {why}", f"use {REFERENCE_FORMS}")
        self.text = text
        self.why = why


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
    if not isinstance(name, str) or not ENV_NAME_RE.match(name):
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


def env_var(name: str) -> str:
    """The function's environment variable that carries secret ``name``'s pinned reference."""
    return ENV_PREFIX + name


def parse_refs(table: Mapping[str, str]) -> tuple[SecretRef, ...]:
    return tuple(parse_ref(name, text) for name, text in table.items())


def reference_problem(name: str, text: object) -> str | None:
    """What is wrong with one ``NAME = "reference"`` entry, for a configuration error; None if nothing."""
    try:
        parse_ref(name, text)  # type: ignore[arg-type]
    except MalformedSecretReference as exc:
        return f"must be a reference {REFERENCE_FORMS}; {exc.text!r} is a malformed reference: {exc.why}"
    return None


def sources(table: Mapping[str, str]) -> frozenset[str]:
    """The services an environment's references read from: the clients
    :func:`~stageflow.secrets.stores.resolve` needs (``{s: aws.client(s) for s in sources(...)}``)."""
    return frozenset(r.source for r in parse_refs(table))


def check_version_stage(stage: str) -> str:
    if not VERSION_STAGE_RE.match(stage or ""):
        raise UsageError(
            f"invalid --version-stage {stage!r}", "a staging label such as AWSCURRENT or AWSPENDING"
        )
    return stage
