import json

from service.handler import handler, route


def test_health():
    assert route("GET", "/health") == (200, {"status": "ok", "version": "1.0.0"})


def test_hello_event_v2():
    event = {
        "rawPath": "/hello",
        "requestContext": {"http": {"method": "GET"}},
        "queryStringParameters": {"name": "ops"},
    }
    resp = handler(event)
    assert resp["statusCode"] == 200
    assert json.loads(resp["body"])["message"] == "hello, ops"


def test_unknown_path_and_method():
    assert route("GET", "/nope")[0] == 404
    assert route("POST", "/hello")[0] == 405
