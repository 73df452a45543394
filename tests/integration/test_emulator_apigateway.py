"""The emulator keeps what API Gateway keeps for the front door's integrations
(stageflow.local.apigateway_fidelity): without it Terraform planned an update of the proxy integrations'
``cache_key_parameters`` on every deploy, and that update (UpdateIntegration, not implemented by moto)
hung the apply in the provider's retries."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.emulator

URI = (
    "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:123456789012:function:fd-dev:live/invocations"
)


def test_cache_keys_are_kept_and_an_integration_can_be_patched(aws):
    api = aws.client("apigateway")
    rest = api.create_rest_api(name="fd-fidelity")["id"]
    root = api.get_resources(restApiId=rest)["items"][0]["id"]
    proxy = api.create_resource(restApiId=rest, parentId=root, pathPart="{proxy+}")["id"]
    api.put_method(
        restApiId=rest,
        resourceId=proxy,
        httpMethod="GET",
        authorizationType="NONE",
        requestParameters={"method.request.path.proxy": True},
    )
    put = api.put_integration(
        restApiId=rest,
        resourceId=proxy,
        httpMethod="GET",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=URI,
        cacheKeyParameters=["method.request.path.proxy"],
    )
    assert put["cacheKeyParameters"] == ["method.request.path.proxy"]
    got = api.get_integration(restApiId=rest, resourceId=proxy, httpMethod="GET")
    assert got["cacheKeyParameters"] == ["method.request.path.proxy"]

    # what the AWS provider sends for a changed integration
    new_uri = URI.replace(":live/", ":canary/")
    patched = api.update_integration(
        restApiId=rest,
        resourceId=proxy,
        httpMethod="GET",
        patchOperations=[
            {"op": "replace", "path": "/uri", "value": new_uri},
            {"op": "replace", "path": "/timeoutInMillis", "value": "10000"},
            {"op": "remove", "path": "/cacheKeyParameters/method.request.path.proxy"},
        ],
    )
    assert patched["uri"] == new_uri and patched["cacheKeyParameters"] == []
    got = api.get_integration(restApiId=rest, resourceId=proxy, httpMethod="GET")
    assert got["uri"] == new_uri and got["timeoutInMillis"] == 10000 and got["cacheKeyParameters"] == []
    api.update_integration(
        restApiId=rest,
        resourceId=proxy,
        httpMethod="GET",
        patchOperations=[{"op": "add", "path": "/cacheKeyParameters/method.request.path.proxy"}],
    )
    got = api.get_integration(restApiId=rest, resourceId=proxy, httpMethod="GET")
    assert got["cacheKeyParameters"] == ["method.request.path.proxy"]

    with pytest.raises(ClientError) as err:
        api.update_integration(
            restApiId=rest,
            resourceId=proxy,
            httpMethod="GET",
            patchOperations=[{"op": "replace", "path": "/nonsense", "value": "x"}],
        )
    assert err.value.response["Error"]["Code"] == "BadRequestException"
