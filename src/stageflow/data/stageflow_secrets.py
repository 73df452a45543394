"""stageflow_secrets: the secrets of this Lambda function, read at run time (standard library only).

stageflow never puts a secret's value in a function's environment. For every entry of
``[environments.ENV.secrets]`` it writes a *reference pinned to one version* instead::

    STAGEFLOW_SECRET_DB_PASSWORD = "secretsmanager:arn:...:secret:svc/dev/db-AbC?versionId=6f0c...#password"
    STAGEFLOW_SECRET_API_HOST    = "ssm:/svc/dev/api/host:7"

and the service reads the value with this module (copy this file next to your handler; stageflow's
copy is ``stageflow/data/stageflow_secrets.py``)::

    import stageflow_secrets

    password = stageflow_secrets.get("DB_PASSWORD")   # str; cached for the life of the process
    stageflow_secrets.names()                          # ("API_HOST", "DB_PASSWORD")

A pinned version never changes, so a value is read once per execution environment and cached for good:
a rotation is a new reference, which is a new function version (shipped through the canary), and a
rollback brings the previous version and its reference back.

Where the value comes from:

- the AWS Parameters and Secrets Lambda extension (``http://localhost:2773`` with the session token)
  when the function has it (a ``/opt/extensions/*ParametersAndSecrets*`` file, or
  ``STAGEFLOW_SECRETS_EXTENSION=1``) and no custom endpoint is set;
- else Secrets Manager (``GetSecretValue`` with ``VersionId``) or Parameter Store (``GetParameter`` of
  ``NAME:VERSION``, decrypted), signed with Signature Version 4 from the function's credentials; the
  endpoint is ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` / ``AWS_ENDPOINT_URL_SSM`` / ``AWS_ENDPOINT_URL``
  when set (the local emulator sets ``AWS_ENDPOINT_URL``), else the region's AWS endpoint.

Errors are :class:`SecretError` with the name and the reference, never the value.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request

PREFIX = "STAGEFLOW_SECRET_"
EXTENSION_PORT = 2773
TIMEOUT_S = 5.0
_cache: dict[str, str] = {}
_lock = threading.Lock()


class SecretError(RuntimeError):
    """A secret could not be read: not configured, malformed reference, or the store refused."""


def names() -> tuple[str, ...]:
    """The secret names configured for this function (sorted)."""
    return tuple(
        sorted(k[len(PREFIX) :] for k in os.environ if k.startswith(PREFIX) and len(k) > len(PREFIX))
    )


def reference(name: str) -> str:
    """The pinned reference of ``name`` (safe to log: it holds no value)."""
    ref = os.environ.get(PREFIX + name)
    if not ref:
        raise SecretError(f"secret {name}: not configured ({PREFIX}{name} is not set)")
    return ref


def get(name: str) -> str:
    """The value of secret ``name``, read once per process (the reference is pinned to a version)."""
    ref = reference(name)
    with _lock:
        if ref in _cache:
            return _cache[ref]
    value = _read(name, ref)
    with _lock:
        _cache[ref] = value
    return value


def clear_cache() -> None:
    with _lock:
        _cache.clear()


# -- references -----------------------------------------------------------------------------------
def parse(ref: str) -> tuple[str, str, str, str | None]:
    """``(source, id, version, key)`` of a pinned reference."""
    source, sep, rest = ref.partition(":")
    if source == "ssm" and sep:
        path, colon, version = rest.rpartition(":")
        if colon and path.startswith("/") and version.isdigit():
            return "ssm", path, version, None
    elif source == "secretsmanager" and sep:
        body, _, key = rest.partition("#")
        secret_id, q, version = body.partition("?versionId=")
        if q and secret_id and version:
            return "secretsmanager", secret_id, version, key or None
    raise SecretError(f"malformed pinned reference {ref!r}")


def _read(name: str, ref: str) -> str:
    source, ident, version, key = parse(ref)
    try:
        doc = _via_extension(source, ident, version) if _use_extension() else _via_api(source, ident, version)
    except urllib.error.HTTPError as exc:
        raise SecretError(f"secret {name} ({ref}): {exc.code} {_error_type(exc)}") from None
    except (OSError, ValueError) as exc:
        raise SecretError(f"secret {name} ({ref}): {type(exc).__name__}: {exc}") from None
    if key is None:
        return doc
    try:
        data = json.loads(doc)
    except ValueError:
        raise SecretError(f"secret {name} ({ref}): not a JSON object, so it has no key {key!r}") from None
    if not isinstance(data, dict) or data.get(key) is None:
        raise SecretError(f"secret {name} ({ref}): no key {key!r}")
    value = data[key]
    return value if isinstance(value, str) else json.dumps(value)


def _error_type(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return exc.reason or ""
    return str(body.get("__type") or body.get("message") or exc.reason or "").rpartition("#")[2]


def _document(source: str, answer: dict) -> str:
    if source == "ssm":
        return answer["Parameter"]["Value"]
    if answer.get("SecretString") is not None:
        return answer["SecretString"]
    import base64

    return base64.b64decode(answer.get("SecretBinary") or b"").decode("utf-8")


# -- the Parameters and Secrets Lambda extension --------------------------------------------------
def _use_extension() -> bool:
    forced = os.environ.get("STAGEFLOW_SECRETS_EXTENSION")
    if forced is not None:
        return forced == "1"
    if any(
        os.environ.get(v)
        for v in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM")
    ):
        return False
    try:
        return any("ParametersAndSecrets" in n for n in os.listdir("/opt/extensions"))
    except OSError:
        return False


def _via_extension(source: str, ident: str, version: str) -> str:
    port = int(os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") or EXTENSION_PORT)
    if source == "ssm":
        query = {"name": f"{ident}:{version}", "withDecryption": "true"}
        path = "/systemsparameterstore/get"
    else:
        query = {"secretId": ident, "versionId": version}
        path = "/secretsmanager/get"
    url = f"http://localhost:{port}{path}?{urllib.parse.urlencode(query)}"
    req = urllib.request.Request(
        url, headers={"X-Aws-Parameters-Secrets-Token": os.environ.get("AWS_SESSION_TOKEN", "")}
    )
    with _opener(True).open(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - http://localhost only
        return _document(source, json.loads(resp.read()))


# -- the services' APIs, signed (Signature Version 4) ---------------------------------------------
def _via_api(source: str, ident: str, version: str) -> str:
    if source == "ssm":
        service, target = "ssm", "AmazonSSM.GetParameter"
        body = {"Name": f"{ident}:{version}", "WithDecryption": True}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_SSM")
    else:
        service, target = "secretsmanager", "secretsmanager.GetSecretValue"
        body = {"SecretId": ident, "VersionId": version}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = (
        endpoint or os.environ.get("AWS_ENDPOINT_URL") or f"https://{service}.{region}.amazonaws.com"
    ).rstrip("/")
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    headers.update(sign("POST", endpoint + "/", headers, payload, service=service, region=region))
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"endpoint {endpoint!r} is not http(s)")
    req = urllib.request.Request(endpoint + "/", data=payload, headers=headers, method="POST")  # noqa: S310
    host = parts.hostname or ""
    loopback = host == "localhost" or host.startswith("127.") or host == "::1"
    with _opener(loopback).open(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - http(s), checked above
        return _document(source, json.loads(resp.read()))


def _opener(loopback: bool) -> urllib.request.OpenerDirector:
    """No proxy for loopback (the extension, the local emulator); the environment's otherwise."""
    return (
        urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if loopback
        else urllib.request.build_opener()
    )


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    payload: bytes,
    *,
    service: str,
    region: str,
    credentials: tuple[str, str, str | None] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The Signature Version 4 headers (``X-Amz-Date``, ``X-Amz-Security-Token``, ``Authorization``)."""
    if credentials is None:
        credentials = (
            os.environ.get("AWS_ACCESS_KEY_ID", ""),
            os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            os.environ.get("AWS_SESSION_TOKEN"),
        )
    access_key, secret_key, token = credentials
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - runs on Python 3.9+
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc
    if (parts.scheme == "https" and host.endswith(":443")) or (
        parts.scheme == "http" and host.endswith(":80")
    ):
        host = host.rsplit(":", 1)[0]
    out = {"X-Amz-Date": amz_date}
    if token:
        out["X-Amz-Security-Token"] = token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in {**headers, **out, "Host": host}.items()}
    names = ";".join(sorted(signed))
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            "&".join(sorted(parts.query.split("&"))) if parts.query else "",
            "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)),
            names,
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
    )
    return out
