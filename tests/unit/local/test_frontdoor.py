"""The local front door's pure parts: the URL seam, API Gateway's proxy event (1.0) and answer mapping,
and how a path finds its resource. The whole path (emulator, Terraform's API, the deployed zip) is
tests/e2e/test_front_door_cli.py."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

from stageflow.local import frontdoor as fd


def test_local_url_of_a_stage_invoke_url():
    url = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/v1-dev"
    assert fd.local_url("http://127.0.0.1:4566/", url) == "http://127.0.0.1:4566/_frontdoor/a1b2c3d4e5/v1-dev"
    assert (
        fd.local_url("http://127.0.0.1:4566", url + "/")
        == "http://127.0.0.1:4566/_frontdoor/a1b2c3d4e5/v1-dev"
    )
    assert fd.local_url("http://127.0.0.1:1", "https://example.com/v1") is None
    assert fd.local_url("http://127.0.0.1:1", None) is None


ROUTE = fd.Route("api1", "svc-api-dev", "v1-dev", "123456789012", "r1", "/{proxy+}", {"proxy": "hello"},
                 "arn:aws:lambda:us-east-1:123456789012:function:svc-dev:live")  # fmt: skip


def test_the_proxy_event_is_api_gateways_payload_1_0():
    req = fd.Request(
        "POST", "/hello", "name=a&name=b&x=", {"Host": "h", "User-Agent": "curl"}, b'{"k":1}', "1.2.3.4"
    )
    ev = fd.proxy_event(req, ROUTE)
    assert (ev["resource"], ev["path"], ev["httpMethod"]) == ("/{proxy+}", "/hello", "POST")
    assert ev["queryStringParameters"] == {"name": "b", "x": ""}
    assert ev["multiValueQueryStringParameters"] == {"name": ["a", "b"], "x": [""]}
    assert (
        ev["pathParameters"] == {"proxy": "hello"} and ev["body"] == '{"k":1}' and not ev["isBase64Encoded"]
    )
    ctx = ev["requestContext"]
    assert (ctx["stage"], ctx["path"], ctx["apiId"], ctx["identity"]["sourceIp"]) == (
        "v1-dev",
        "/v1-dev/hello",
        "api1",
        "1.2.3.4",
    )
    binary = fd.proxy_event(fd.Request("PUT", "/b", "", {}, b"\xff\xfe", "1"), ROUTE)
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\xff\xfe"
    empty = fd.proxy_event(fd.Request("GET", "/", "", {}, b"", "1"), ROUTE)
    assert empty["body"] is None and empty["queryStringParameters"] is None


def test_the_functions_answer_becomes_the_http_response():
    ok = json.dumps({"statusCode": 201, "headers": {"x-a": "1"}, "multiValueHeaders": {"x-b": ["2", "3"]},
                     "body": "hi"}).encode()  # fmt: skip
    assert fd.http_response(ok, False) == (
        201,
        {"x-a": "1", "x-b": "2, 3", "Content-Type": "application/json"},
        b"hi",
    )
    b64 = json.dumps(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )
    assert fd.http_response(b64.encode(), False)[2] == b"\x00\x01"
    # API Gateway's 502: the function raised, or answered something that is not a proxy response
    for payload, errored in ((ok, True), (b'"just a string"', False), (b"{}", False), (b"not json", False),
                             (b'{"statusCode": 99}', False)):  # fmt: skip
        assert fd.http_response(payload, errored) == fd.SERVER_ERROR


def _resource(rid, path):
    return SimpleNamespace(id=rid, get_path=lambda: path)


def test_a_path_finds_the_exact_resource_first_then_the_greedy_proxy():
    root, proxy, deep = _resource("r", "/"), _resource("p", "/{proxy+}"), _resource("d", "/v2/{rest+}")
    assert [(r.id, p) for r, p in fd._candidates([root, proxy], "/")] == [("r", None)]
    assert [(r.id, p) for r, p in fd._candidates([root, proxy, deep], "/v2/a/b")] == [
        ("d", {"rest": "a/b"}),
        ("p", {"proxy": "v2/a/b"}),
    ]
    assert fd._candidates([root], "/health") == []
