"""What `stageflow local up` creates in a fresh emulator: the Terraform state bucket and lock table."""

from __future__ import annotations

from dataclasses import dataclass

STATE_BUCKET = "stageflow-local-tfstate"
LOCK_TABLE = "stageflow-local-tflock"


@dataclass(frozen=True)
class BootstrapResult:
    bucket: str
    table: str
    created: tuple[str, ...]


def bootstrap(clients, region: str) -> BootstrapResult:
    """Create the state bucket (versioned, encrypted, private) and the lock table if missing."""
    from botocore.exceptions import ClientError

    created: list[str] = []
    s3 = clients.client("s3")
    try:
        s3.head_bucket(Bucket=STATE_BUCKET)
    except ClientError:
        kwargs = {"Bucket": STATE_BUCKET}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_bucket_versioning(Bucket=STATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=STATE_BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=STATE_BUCKET,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        created.append(f"s3://{STATE_BUCKET}")
    ddb = clients.client("dynamodb")
    try:
        ddb.describe_table(TableName=LOCK_TABLE)
    except ClientError:
        ddb.create_table(
            TableName=LOCK_TABLE,
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        created.append(f"dynamodb:{LOCK_TABLE}")
    return BootstrapResult(STATE_BUCKET, LOCK_TABLE, tuple(created))
