"""The deployed service's API, end to end through whatever serves it (HTTP or the Lambda alias)."""


def test_health(service):
    status, body = service.get("/health")
    assert status == 200
    assert body["status"] == "ok" and body["version"]


def test_hello_greets_by_name(service):
    status, body = service.get("/hello", name="integration")
    assert status == 200
    assert body["message"] == "hello, integration"
    assert body["function_version"]  # "local" on loopback, the Lambda version on AWS


def test_long_names_are_cut(service):
    status, body = service.get("/hello", name="x" * 500)
    assert status == 200 and body["message"] == "hello, " + "x" * 64


def test_unknown_path_is_404_json(service):
    status, body = service.get("/no-such-path")
    assert status == 404 and body["error"] == "not found"
