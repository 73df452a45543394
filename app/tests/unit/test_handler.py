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


def test_secrets_route_reports_versions_never_values(monkeypatch):
    import stageflow_secrets

    ref = "ssm:/sample-api/dev/api/host:3"
    monkeypatch.setenv("STAGEFLOW_SECRET_API_HOST", ref)
    monkeypatch.setenv("STAGEFLOW_SECRET_BROKEN", "not-a-reference")
    monkeypatch.setitem(stageflow_secrets._cache, ref, "db-primary.internal")  # read once before
    status, body = route("GET", "/secrets")
    assert status == 200
    assert body["secrets"]["API_HOST"] == {"version": "3", "read": True}
    assert body["secrets"]["BROKEN"]["read"] is False and "malformed" in body["secrets"]["BROKEN"]["error"]
    assert "db-primary" not in json.dumps(body)
