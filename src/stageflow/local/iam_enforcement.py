"""IAM enforcement in the emulator, closer to AWS's, for the tests that prove least privilege by running.

moto can check every request against the caller's IAM policies (its access control: off until
``POST /moto-api/reset-auth`` with a count, or ``INITIAL_NO_AUTH_ACTION_COUNT`` at start). Out of the
box that check is too coarse to prove anything about our policies: for most services it asks about the
resource ``*``, which no statement naming ARNs matches (so every scoped policy denies everything), and
an ``Allow`` whose condition it cannot evaluate becomes an explicit *deny*. :func:`apply` fixes both in
the emulator's process:

- the request's resource ARN, for the services the deploy and rollback paths call: Lambda (the function,
  qualified when the request names a version or alias), DynamoDB (the table), SNS (the topic),
  CloudWatch alarms (the alarm, when one name is asked for), SSM parameters, Secrets Manager secrets;
  anything else stays ``*`` as before;
- IAM's action prefix where the signing name differs (CloudWatch signs as ``monitoring``);
- DynamoDB transactions authorized item by item (``PutItem``, ``UpdateItem``, ... on each table), as AWS
  does, not as one ``dynamodb:TransactWriteItems`` on ``*``;
- the signature of a request without a body (moto re-signs a GET over its parsed parameters);
- AWS's statement semantics: a statement applies only when its resource matches and its conditions
  hold (moto ignores conditions it cannot evaluate, which grants too much). A condition with a key the
  request does not carry here (``iam:PermissionsBoundary``, ``iam:PassedToService``,
  ``aws:RequestTag/...``) or an operator not evaluated here is read the stricter way: such an
  ``Allow`` does not apply, such a ``Deny`` does. Never looser than AWS.

Nothing changes while enforcement is off (the default): the resource is only used by the check.
docs/architecture.md ("IAM enforcement") says how this differs from AWS.
"""

from __future__ import annotations

import json
import re
from typing import Any

_APPLIED = "_stageflow_iam_resources"
_FUNCTION_PATH = re.compile(r"/functions/(?P<name>[^/?]+)(?P<rest>/[^?]*)?")


def _lambda_resource(resp: Any) -> str:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(resp.uri)
    m = _FUNCTION_PATH.search(parsed.path)
    if not m:
        return "*"
    name = unquote(m.group("name"))
    if name.startswith("arn:"):
        return name
    account, region = resp.current_account, resp.region
    base = f"arn:aws:lambda:{region}:{account}:function:{name.split(':')[0]}"
    rest = m.group("rest") or ""
    alias = re.match(r"/aliases/([^/]+)", rest)
    qualifier = alias.group(1) if alias else None
    if not qualifier and parsed.query:
        q = re.search(r"(?:^|&)Qualifier=([^&]+)", parsed.query)
        qualifier = unquote(q.group(1)) if q else None
    if ":" in name:
        qualifier = name.split(":", 1)[1]
    return f"{base}:{qualifier}" if qualifier else base


def _json_body(resp: Any) -> dict:
    params = getattr(resp, "params", None)
    if isinstance(params, dict) and params:
        return params
    try:
        body = resp.body if isinstance(resp.body, str) else resp.body.decode()
        data = json.loads(body or "{}")
        return data if isinstance(data, dict) else {}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}


def _param(resp: Any, name: str) -> Any:
    try:
        value = resp._get_param(name)
    except Exception:  # noqa: BLE001 - a parser that cannot read it: no resource
        value = None
    return value if value is not None else _json_body(resp).get(name)


def _dynamodb_resource(resp: Any) -> str:
    table = _param(resp, "TableName")
    if not table:
        return "*"
    if str(table).startswith("arn:"):
        return str(table)
    suffix = ""
    if _param(resp, "IndexName"):
        suffix = f"/index/{_param(resp, 'IndexName')}"
    return f"arn:aws:dynamodb:{resp.region}:{resp.current_account}:table/{table}{suffix}"


def _sns_resource(resp: Any) -> str:
    return str(_param(resp, "TopicArn") or _param(resp, "TargetArn") or "*")


def _cloudwatch_resource(resp: Any) -> str:
    names = _param(resp, "AlarmNames")
    if isinstance(names, list) and len(names) == 1:
        return f"arn:aws:cloudwatch:{resp.region}:{resp.current_account}:alarm:{names[0]}"
    name = _param(resp, "AlarmName")
    if name:
        return f"arn:aws:cloudwatch:{resp.region}:{resp.current_account}:alarm:{name}"
    return "*"  # several alarms, or none named: only a Resource "*" statement allows it (stricter than AWS)


def _ssm_resource(resp: Any) -> str:
    names = _param(resp, "Names")
    name = _param(resp, "Name") or (names[0] if isinstance(names, list) and len(names) == 1 else None)
    if not name:
        return "*"
    if str(name).startswith("arn:"):
        return str(name)
    return f"arn:aws:ssm:{resp.region}:{resp.current_account}:parameter/{str(name).lstrip('/')}"


def _secretsmanager_resource(resp: Any) -> str:
    secret_id = _param(resp, "SecretId")
    if not secret_id:
        return "*"
    if str(secret_id).startswith("arn:"):
        return str(secret_id)
    try:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[resp.current_account][resp.region]
        return backend.describe_secret(secret_id).arn  # the ARN with AWS's random suffix
    except Exception:  # noqa: BLE001 - unknown secret: the name-shaped ARN, matched as AWS would
        return f"arn:aws:secretsmanager:{resp.region}:{resp.current_account}:secret:{secret_id}"


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamodb_transactions() -> None:
    """AWS authorizes TransactWriteItems / TransactGetItems item by item (PutItem, UpdateItem, ... on
    each item's table); moto asks about one action, ``dynamodb:TransactWriteItems``, on ``*``."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler._authenticate_and_authorize_normal_action

    def authorize(self, resource: str = "*") -> None:
        action = self._get_action()
        if action not in ("TransactWriteItems", "TransactGetItems"):
            return original(self, resource)
        checks = [
            (_TRANSACT_ACTIONS.get(kind, kind), spec.get("TableName", "*"))
            for item in (_json_body(self).get("TransactItems") or [])
            for kind, spec in item.items()
        ]
        for sub_action, table in checks or [(action, "*")]:
            arn = (
                table
                if table == "*" or table.startswith("arn:")
                else (f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}")
            )
            self._get_action = lambda _a=sub_action: _a
            try:
                original(self, arn)
            finally:
                del self._get_action
        return None

    DynamoHandler._authenticate_and_authorize_normal_action = authorize


def _resource_classes() -> list[tuple[Any, Any]]:
    from moto.awslambda.responses import LambdaResponse
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sns.responses import SNSResponse
    from moto.ssm.responses import SimpleSystemManagerResponse

    return [
        (LambdaResponse, _lambda_resource),
        (DynamoHandler, _dynamodb_resource),
        (SNSResponse, _sns_resource),
        (CloudWatchResponse, _cloudwatch_resource),
        (SimpleSystemManagerResponse, _ssm_resource),
        (SecretsManagerResponse, _secretsmanager_resource),
    ]


def _conditions_hold(conditions: dict, known: dict) -> bool | None:
    """Whether a statement's conditions hold for the request's known context values; ``None`` when one
    uses a key the request does not carry here or an operator not evaluated here."""
    import fnmatch

    operators = {
        "StringEquals": lambda want, got: got == want,
        "StringLike": lambda want, got: fnmatch.fnmatchcase(got, want),
        "ArnEquals": lambda want, got: got == want,
        "ArnLike": lambda want, got: fnmatch.fnmatchcase(got, want),
    }
    for operator, pairs in conditions.items():
        test = operators.get(operator)
        if test is None:
            return None
        for key, wanted in pairs.items():
            got = known.get(key)
            if got is None:
                return None
            wanted = wanted if isinstance(wanted, list) else [wanted]
            if not any(test(str(w), str(got)) for w in wanted):
                return False
    return True


def _aws_statement_semantics() -> None:
    """A statement applies when action, principal, resource and conditions all match; an unmet or
    unknown condition makes it not apply (moto: an explicit deny, checked before the resource)."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        if "NotAction" in self._statement:
            concerned = not self._check_element_matches("NotAction", action)
        else:
            concerned = self._check_element_matches("Action", action)
        if not concerned:
            return PermissionResult.NEUTRAL
        if self.is_unknown_principal(self._statement.get("Principal")):
            return PermissionResult.NEUTRAL
        try:
            if principal and not self._check_principal(principal):
                return PermissionResult.NEUTRAL
        except TypeError:  # a service principal (moto compares AWS principals only)
            return PermissionResult.NEUTRAL
        if self._statement.get("Resource") and not self._check_element_matches("Resource", resource):
            return PermissionResult.NEUTRAL
        deny = self._statement["Effect"] == "Deny"
        holds = _conditions_hold(self._statement.get("Condition") or {}, incoming_condition_values or {})
        if holds is None:  # a key or operator the emulator cannot evaluate: the stricter reading
            return PermissionResult.DENIED if deny else PermissionResult.NEUTRAL
        if not holds:
            return PermissionResult.NEUTRAL
        return PermissionResult.DENIED if deny else PermissionResult.PERMITTED

    IAMPolicyStatement.is_action_permitted = is_action_permitted


# the signing name in a request's credential scope -> the IAM action prefix, where they differ
_IAM_PREFIX = {"monitoring": "cloudwatch"}


def _iam_action_prefix() -> None:
    """moto names the action after the signing name (``monitoring:DescribeAlarms``); IAM policies use
    the service prefix (``cloudwatch:DescribeAlarms``)."""
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        prefix, _, name = self._action.partition(":")
        if prefix in _IAM_PREFIX:
            self._action = f"{_IAM_PREFIX[prefix]}:{name}"

    IAMRequestBase.__init__ = __init__


def _signature_of_bodiless_requests() -> None:
    """moto re-signs a GET without a body over its parsed parameters (a form body the client never
    sent), so every signed GET of a REST service (Lambda's GetAlias, GetFunctionConfiguration) fails
    with SignatureDoesNotMatch: sign what was sent."""
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase._create_aws_request

    def _create_aws_request(self):
        request = original(self)
        if not self._body and self._method in ("GET", "HEAD", "DELETE"):
            request.data = b""
        return request

    IAMRequestBase._create_aws_request = _create_aws_request


def apply() -> list[str]:
    """Patch moto in this process (the emulator's); idempotent. Returns the services given resources."""
    from moto.iam.access_control import IAMPolicyStatement

    done = []
    for cls, fn in _resource_classes():
        if not hasattr(cls, "_determine_resource"):
            cls._determine_resource = lambda self, _fn=fn: _fn(self)
        done.append(cls.__name__)
    if not getattr(IAMPolicyStatement, _APPLIED, False):
        _aws_statement_semantics()
        _signature_of_bodiless_requests()
        _dynamodb_transactions()
        _iam_action_prefix()
        setattr(IAMPolicyStatement, _APPLIED, True)
    return done
