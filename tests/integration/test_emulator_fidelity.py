"""The emulator keeps what AWS keeps (stageflow.local.fidelity): without it Terraform plans a perpetual
in-place update of both functions (dead_letter_config) on every deploy."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

pytestmark = pytest.mark.emulator


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("h.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


def test_dead_letter_tracing_and_key_are_kept_like_aws(aws):
    iam, lam, sqs = aws.client("iam"), aws.client("lambda"), aws.client("sqs")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="fidelity-fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    q1 = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="fid-1")["QueueUrl"], AttributeNames=["QueueArn"]
    )
    q2 = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="fid-2")["QueueUrl"], AttributeNames=["QueueArn"]
    )
    arn1, arn2 = q1["Attributes"]["QueueArn"], q2["Attributes"]["QueueArn"]
    lam.create_function(
        FunctionName="fidelity",
        Runtime="python3.11",
        Role=role,
        Handler="h.handler",
        Code={"ZipFile": _zip()},
        DeadLetterConfig={"TargetArn": arn1},
    )
    assert lam.get_function(FunctionName="fidelity")["Configuration"]["DeadLetterConfig"] == {
        "TargetArn": arn1
    }
    key = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001"
    lam.update_function_configuration(
        FunctionName="fidelity",
        DeadLetterConfig={"TargetArn": arn2},
        TracingConfig={"Mode": "Active"},
        KMSKeyArn=key,
    )
    conf = lam.get_function_configuration(FunctionName="fidelity")
    assert conf["DeadLetterConfig"] == {"TargetArn": arn2}
    assert conf["TracingConfig"] == {"Mode": "Active"} and conf["KMSKeyArn"] == key
    # a published version carries it; an empty TargetArn removes it, as in AWS
    v = lam.publish_version(FunctionName="fidelity")["Version"]
    assert lam.get_function_configuration(FunctionName="fidelity", Qualifier=v)["DeadLetterConfig"] == {
        "TargetArn": arn2
    }
    lam.update_function_configuration(FunctionName="fidelity", DeadLetterConfig={"TargetArn": ""})
    assert "DeadLetterConfig" not in lam.get_function_configuration(FunctionName="fidelity")
