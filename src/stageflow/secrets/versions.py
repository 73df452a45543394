"""What identifies an environment's secrets without their values, for a release's record: each
reference (``secretsmanager:ID[#KEY]`` / ``ssm:PATH``) with the version the store serves now — Secrets
Manager's ``VersionId`` of ``AWSCURRENT`` (DescribeSecret), Parameter Store's ``Version``
(DescribeParameters). Neither call returns a value. A version that cannot be read is recorded as
``None``: the record is best effort and never fails a deploy (the secrets stage reads the values)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stageflow.secrets.refs import SECRETSMANAGER, SSM, parse_refs

AWSCURRENT = "AWSCURRENT"


def _sm_version(client, secret_id: str) -> str | None:
    resp = client.describe_secret(SecretId=secret_id)
    for version, stages in (resp.get("VersionIdsToStages") or {}).items():
        if AWSCURRENT in stages:
            return str(version)
    return None


def _ssm_version(client, path: str) -> str | None:
    resp = client.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [path]}])
    for param in resp.get("Parameters") or []:
        if param.get("Name") == path and param.get("Version") is not None:
            return str(param["Version"])
    return None


def secret_versions(table: Mapping[str, str], client: Callable[[str], Any]) -> list[dict[str, Any]]:
    """``[{"name", "ref", "version"}]`` for every reference of ``table``, in its order; ``client(service)``
    gives the botocore client of a store."""
    out = []
    for ref in parse_refs(table):
        try:
            if ref.source == SECRETSMANAGER:
                version = _sm_version(client("secretsmanager"), ref.id)
            elif ref.source == SSM:
                version = _ssm_version(client("ssm"), ref.id)
            else:  # pragma: no cover - parse_refs knows only these two
                version = None
        except Exception:  # noqa: BLE001 - best effort: the record names the reference without a version
            version = None
        out.append({"name": ref.name, "ref": ref.text, "version": version})
    return out
