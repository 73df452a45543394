"""The fault proxy itself: it names every request's service and operation, injects each fault kind in
the protocol botocore expects, only where a rule matches, at a seeded and reproducible rate."""

from __future__ import annotations

import io
import zipfile

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from tests.helpers.faultproxy import Fault, FaultProxy

pytestmark = [pytest.mark.emulator, pytest.mark.reliability]


def _one_try(faulty_aws, **kw):
    return faulty_aws(max_attempts=1, **kw)


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


def test_names_operations_of_every_protocol(fault_proxy, faulty_aws):
    clients = _one_try(faulty_aws)
    clients.client("dynamodb").list_tables()  # JSON (X-Amz-Target)
    clients.client("sns").list_topics()  # query (Action=)
    clients.client("cloudwatch").list_metrics()  # Smithy RPC v2 CBOR (/service/.../operation/OP)
    clients.client("lambda").list_functions()  # REST (path + method)
    clients.client("ssm").describe_parameters()
    clients.client("s3").list_buckets()
    seen = set(fault_proxy.calls)
    assert {
        ("dynamodb", "ListTables"),
        ("sns", "ListTopics"),
        ("monitoring", "ListMetrics"),
        ("lambda", "ListFunctions"),
        ("ssm", "DescribeParameters"),
        ("s3", "ListBuckets"),
    } <= seen, seen


@pytest.mark.parametrize(
    ("kind", "service", "call", "code", "status"),
    [
        ("throttle", "dynamodb", lambda c: c.client("dynamodb").list_tables(), "ThrottlingException", 400),
        ("throttle", "sns", lambda c: c.client("sns").list_topics(), "Throttling", 400),
        (
            "throttle",
            "cloudwatch",
            lambda c: c.client("cloudwatch").list_metrics(),
            "ThrottlingException",
            400,
        ),
        ("429", "lambda", lambda c: c.client("lambda").list_functions(), "TooManyRequestsException", 429),
        ("500", "dynamodb", lambda c: c.client("dynamodb").list_tables(), "InternalFailure", 500),
        ("503", "lambda", lambda c: c.client("lambda").list_functions(), "ServiceUnavailable", 503),
        ("503", "cloudwatch", lambda c: c.client("cloudwatch").list_metrics(), "ServiceUnavailable", 503),
        ("503", "s3", lambda c: c.client("s3").list_buckets(), "ServiceUnavailable", 503),
        ("throttle", "ssm", lambda c: c.client("ssm").describe_parameters(), "ThrottlingException", 400),
    ],
)
def test_error_faults_parse_as_aws_errors(fault_proxy, faulty_aws, kind, service, call, code, status):
    fault_proxy.configure([Fault(kind, 1.0, service)])
    with pytest.raises(ClientError) as exc:
        call(_one_try(faulty_aws))
    assert _code(exc.value) == code
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_only_the_matching_operation_is_hit(fault_proxy, faulty_aws):
    clients = _one_try(faulty_aws)
    lam = clients.client("lambda")
    role = clients.client("iam").create_role(
        RoleName="fp",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )["Role"]["Arn"]
    lam.create_function(
        FunctionName="fp",
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": _zip()},
    )
    v = lam.publish_version(FunctionName="fp")["Version"]
    lam.create_alias(FunctionName="fp", Name="live", FunctionVersion=v)
    fault_proxy.configure([Fault("429", 1.0, "lambda", "UpdateAlias")])
    assert lam.get_alias(FunctionName="fp", Name="live")["FunctionVersion"] == v
    with pytest.raises(ClientError) as exc:
        lam.update_alias(FunctionName="fp", Name="live", FunctionVersion=v)
    assert _code(exc.value) == "TooManyRequestsException"
    assert fault_proxy.injected == {("429", "lambda", "UpdateAlias"): 1}
    assert fault_proxy.calls[("lambda", "GetAlias")] == 1


def test_drop_closes_the_connection_before_the_emulator_sees_the_call(fault_proxy, faulty_aws):
    sns = _one_try(faulty_aws).client("sns")
    fault_proxy.configure([Fault("drop", 1.0, "sns", "CreateTopic")])
    with pytest.raises(ConnectionClosedError):
        sns.create_topic(Name="dropped")
    fault_proxy.configure([])
    assert sns.list_topics()["Topics"] == []


def test_drop_after_loses_the_answer_of_a_call_that_happened(fault_proxy, faulty_aws):
    sns = _one_try(faulty_aws).client("sns")
    fault_proxy.configure([Fault("drop_after", 1.0, "sns", "CreateTopic")])
    with pytest.raises(ConnectionClosedError):
        sns.create_topic(Name="done-but-unanswered")
    fault_proxy.configure([])
    assert [t["TopicArn"].rsplit(":", 1)[1] for t in sns.list_topics()["Topics"]] == ["done-but-unanswered"]


def test_slow_answers_hit_the_read_timeout(fault_proxy, faulty_aws):
    # wide margins: these machines are shared, and the emulator itself may answer slowly under load
    ddb = _one_try(faulty_aws, read_timeout=5.0).client("dynamodb")
    fault_proxy.configure([Fault("slow", 1.0, "dynamodb", delay=8.0)])
    with pytest.raises(ReadTimeoutError):
        ddb.list_tables()
    fault_proxy.configure([Fault("slow", 1.0, "dynamodb", delay=0.2)])
    assert ddb.list_tables()["TableNames"] == []  # slow but within the timeout


def test_rates_are_seeded_and_reproducible(emulator, aws):
    def run(seed: int) -> list[bool]:
        proxy = FaultProxy(emulator.endpoint, [Fault("throttle", 0.2)], seed=seed)
        return [proxy.choose("dynamodb", "PutItem") is not None for _ in range(1000)]

    first, again, other = run(7), run(7), run(8)
    assert first == again and first != other
    assert 150 <= sum(first) <= 250  # 20 % of 1000, seeded


def test_rules_share_one_draw_and_filter_by_operation():
    proxy = FaultProxy(
        "http://127.0.0.1:1",
        [Fault("throttle", 0.1, "dynamodb"), Fault("500", 0.1, "dynamodb", "PutItem")],
        seed=3,
    )
    put = [proxy.choose("dynamodb", "PutItem") for _ in range(2000)]
    get = [proxy.choose("dynamodb", "GetItem") for _ in range(2000)]
    assert 300 <= sum(f is not None for f in put) <= 500  # both rules: 20 %
    assert {f.kind for f in get if f} == {"throttle"}  # only the service-wide rule
    assert 120 <= sum(f is not None for f in get) <= 280
    assert proxy.calls[("dynamodb", "PutItem")] == 2000


@pytest.mark.parametrize(
    "bad",
    [lambda: Fault("explode", 0.1), lambda: Fault("drop", 1.5), lambda: FaultProxy("http://203.0.113.9:80")],
)
def test_bad_rules_are_refused(bad):
    with pytest.raises(ValueError):
        bad()


def test_fault_spec_parsing():
    assert Fault.parse("throttle:0.05:dynamodb:PutItem") == Fault("throttle", 0.05, "dynamodb", "PutItem")
    assert Fault.parse("drop:0.01") == Fault("drop", 0.01)
    assert Fault("throttle", 1, "cloudwatch").matches("monitoring", "GetMetricData")
