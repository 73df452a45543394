"""Publish a new Lambda version unless the alias already serves the same code."""

from __future__ import annotations

from dataclasses import dataclass

from stageflow.build.lambda_zip import LambdaZip
from stageflow.deploy.traffic import AliasTraffic
from stageflow.errors import EnvironmentFailure


@dataclass(frozen=True)
class Published:
    version: str | None  # None: nothing to deploy
    previous_version: str
    code_sha256: str
    reason: str


def publish(
    lambda_client, function: str, alias: str, artifact: LambdaZip, *, description: str = ""
) -> Published:
    from botocore.exceptions import ClientError

    traffic = AliasTraffic(lambda_client, function, alias)
    current = traffic.state()
    serving = traffic.code_sha256(current.primary)
    if serving == artifact.code_sha256 and current.settled:
        return Published(
            None,
            current.primary,
            serving,
            f"{function}:{alias} already serves this code (version {current.primary})",
        )
    try:
        lambda_client.update_function_code(FunctionName=function, ZipFile=artifact.data)
        lambda_client.get_waiter("function_updated_v2").wait(
            FunctionName=function, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        out = lambda_client.publish_version(
            FunctionName=function, CodeSha256=artifact.code_sha256, Description=description[:256]
        )
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise EnvironmentFailure(f"publishing {function}: {err.get('Code')}: {err.get('Message')}") from None
    return Published(
        out["Version"], current.primary, artifact.code_sha256, f"published version {out['Version']}"
    )
