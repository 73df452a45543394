"""The local runtime's pure parts: alias routing, the metrics of one invocation, the child's environment."""

from __future__ import annotations

from pathlib import Path

from stageflow.local.runtime import FunctionSpec, LocalRuntime, choose_version, metric_data


def spec(**kw) -> FunctionSpec:
    base = dict(name="svc-api-dev", version="7", arn="arn:aws:lambda:us-east-1:1:function:svc-api-dev:7",
                runtime="python3.12", handler="app.main.handler", code_sha="abc", timeout_s=3.0,
                memory_mb=256, environment=(("GREETING", "hi"), ("AWS_REGION", "eu-west-1")))  # fmt: skip
    base.update(kw)
    return FunctionSpec(**base)


def test_choose_version_by_weight():
    routing = {"AdditionalVersionWeights": {"8": 0.1}}
    assert choose_version("7", routing, 0.0) == "8"
    assert choose_version("7", routing, 0.0999) == "8"
    assert choose_version("7", routing, 0.1) == "7"
    assert choose_version("7", routing, 0.99) == "7"
    assert choose_version("7", None, 0.0) == "7"
    assert choose_version("7", {}, 0.5) == "7"


def test_metric_data_names_alias_and_executed_version():
    data = metric_data(spec(), "live", "live", 12.5, errored=True)
    dims = {tuple((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in data}
    assert dims == {
        (("FunctionName", "svc-api-dev"),),
        (("FunctionName", "svc-api-dev"), ("Resource", "svc-api-dev:live")),
        (("FunctionName", "svc-api-dev"), ("Resource", "svc-api-dev:live"), ("ExecutedVersion", "7")),
    }
    by_name = {m["MetricName"]: m for m in data}
    assert by_name["Errors"]["Value"] == 1.0 and by_name["Invocations"]["Value"] == 1.0
    assert by_name["Duration"]["Value"] == 12.5 and by_name["Duration"]["Unit"] == "Milliseconds"
    assert all(m["Timestamp"].tzinfo is None for m in data)  # as moto keeps PutMetricData's times


def test_unqualified_invocation_has_only_the_function_dimension():
    data = metric_data(spec(version="$LATEST"), None, None, 1.0, errored=False)
    assert {len(m["Dimensions"]) for m in data} == {1}


def test_child_environment_is_hermetic_and_points_at_the_emulator(tmp_path: Path):
    rt = LocalRuntime(
        "http://127.0.0.1:5999", tmp_path, environ={"HTTPS_PROXY": "http://proxy:1", "PATH": "/x"}
    )
    env = rt.child_env(spec(region="eu-west-1"), tmp_path / "task")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5999"
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["_HANDLER"] == "app.main.handler" and env["AWS_LAMBDA_FUNCTION_VERSION"] == "7"
    assert env["GREETING"] == "hi"
    assert env["AWS_REGION"] == "eu-west-1"  # Lambda's reserved variables win over the function's
    assert "HTTPS_PROXY" not in env  # nothing of the emulator's own environment leaks in


def test_a_function_carrying_the_fis_extensions_wrapper_still_runs_its_zip(tmp_path: Path):
    """The chaos stage's staging functions carry AWS_LAMBDA_EXEC_WRAPPER=/opt/aws-fis/bootstrap (the FIS
    extension's, a layer on AWS). No layers are mounted locally and the local runtime never runs an exec
    wrapper: it starts the handler itself, so the deployed zip runs as before and sees the variable."""
    import io
    import sys
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "app.py",
            "import os\ndef handler(event, context):\n"
            "    return {'wrapper': os.environ.get('AWS_LAMBDA_EXEC_WRAPPER'), 'echo': event}\n",
        )
    wrapper = (
        ("AWS_LAMBDA_EXEC_WRAPPER", "/opt/aws-fis/bootstrap"),
        ("AWS_FIS_CONFIGURATION_LOCATION", "arn:aws:s3:::svc-staging-fis-config-1/FisConfigs/"),
    )
    rt = LocalRuntime("http://127.0.0.1:5999", tmp_path, environ={"PATH": str(Path(sys.executable).parent)})
    fn = spec(
        runtime=f"python3.{sys.version_info.minor}",
        handler="app.handler",
        code_sha="fis",
        environment=wrapper,
    )
    try:
        answer, _ms = rt.invoke(fn, buf.getvalue(), '{"n": 1}', invoked_arn=fn.arn)
    finally:
        rt.close()
    assert "error" not in answer, answer
    import json

    assert json.loads(answer["payload"]) == {"wrapper": "/opt/aws-fis/bootstrap", "echo": {"n": 1}}
    assert not Path("/opt/aws-fis/bootstrap").exists()  # nothing was mounted: the wrapper never ran


def test_idle_workers_are_capped_across_functions_least_recently_used_first(tmp_path: Path):
    """Old versions' execution environments do not pile up in a long-lived emulator: over the cap of idle
    workers (all functions and versions together) the least recently used one is stopped; the next
    invocation of its version starts cold, the others stay warm."""
    import io
    import json
    import sys
    import zipfile

    from stageflow.process import pid_alive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "import os\ndef handler(event, context):\n    return os.getpid()\n")
    rt = LocalRuntime(
        "http://127.0.0.1:5999", tmp_path, environ={"PATH": str(Path(sys.executable).parent)}, max_idle=2
    )
    fns = {
        name: spec(runtime=f"python3.{sys.version_info.minor}", handler="app.handler", code_sha=name)
        for name in ("v1", "v2", "v3")
    }

    def pid_of(name: str) -> int:
        answer, _ms = rt.invoke(fns[name], buf.getvalue(), "{}", invoked_arn=fns[name].arn)
        assert "error" not in answer, answer
        return json.loads(answer["payload"])

    try:
        first = {name: pid_of(name) for name in ("v1", "v2", "v3")}
        assert len(set(first.values())) == 3  # one execution environment each
        assert not pid_alive(first["v1"])  # the least recently used, stopped when v3's came back idle
        assert pid_alive(first["v2"]) and pid_alive(first["v3"])
        assert pid_of("v3") == first["v3"]  # warm
        assert pid_of("v1") != first["v1"]  # cold again; it evicts v2 now
        assert not pid_alive(first["v2"])
    finally:
        rt.close()
    assert not pid_alive(first["v3"])
