"""tests/helpers/leakscan.py's AWS readers (moto in-process): every S3 object version, every function
version's configuration, found by scan_for_values."""

from __future__ import annotations

import io
import zipfile

import boto3
from moto import mock_aws

from tests.helpers.leakscan import function_configurations, s3_object_versions, scan_for_values


def test_noncurrent_state_versions_and_every_function_version_are_scanned(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        kw = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        s3, lam, iam = boto3.client("s3", **kw), boto3.client("lambda", **kw), boto3.client("iam", **kw)
        s3.create_bucket(Bucket="state")
        s3.put_bucket_versioning(Bucket="state", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="state", Key="svc/dev/terraform.tfstate", Body=b'{"v": "old-leaked-value"}')
        s3.put_object(Bucket="state", Key="svc/dev/terraform.tfstate", Body=b'{"v": "clean"}')
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("h.py", "def handler(e, c):\n    return 1\n")
        lam.create_function(
            FunctionName="fn",
            Runtime="python3.11",
            Role=role,
            Handler="h.handler",
            Code={"ZipFile": buf.getvalue()},
            Environment={"Variables": {"X": "fn-leaked-value"}},
        )
        lam.publish_version(FunctionName="fn")
        lam.update_function_configuration(FunctionName="fn", Environment={"Variables": {"X": "clean"}})
        states = s3_object_versions(s3, "state")
        configs = function_configurations(lam, "fn")
    assert len(states) == 2 and set(configs) == {"fn:$LATEST", "fn:1"}
    hits = scan_for_values([], {**states, **configs}, ["old-leaked-value", "fn-leaked-value"])
    assert {(h.where.split("?")[0], h.value_index) for h in hits} == {
        ("s3://state/svc/dev/terraform.tfstate", 0),
        ("fn:1", 1),
    }
