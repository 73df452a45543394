"""The emulator as a real background process over real HTTP."""

import json
import socket

import pytest

from stageflow.local.bootstrap import LOCK_TABLE, STATE_BUCKET
from stageflow.local.emulator import Emulator

pytestmark = pytest.mark.emulator


def _port_free(port: int) -> bool:
    """Nothing listens there any more, and a new server may bind it (as servers do, SO_REUSEADDR:
    connections the stopped emulator kept alive leave the port in TIME_WAIT for a minute)."""
    with socket.socket() as c:
        if c.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_cli_up_status_down_lifecycle(tmp_path, cli):
    env = {"STAGEFLOW_STATE_DIR": str(tmp_path / "state")}
    up = cli("local", "up", "--json", env=env)
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert info["running"] and info["started"] and info["endpoint"].startswith("http://127.0.0.1:")
    try:
        st = cli("local", "status", "--json", env=env)
        data = json.loads(st.stdout)
        assert data["running"] is True and data["pid"] == info["pid"] and data["endpoint"] == info["endpoint"]
        # state kept between commands: the bootstrap bucket and table are there
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=data["endpoint"],
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        assert STATE_BUCKET in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert s3.get_bucket_versioning(Bucket=STATE_BUCKET)["Status"] == "Enabled"
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=data["endpoint"],
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        assert ddb.describe_table(TableName=LOCK_TABLE)["Table"]["KeySchema"][0]["AttributeName"] == "LockID"
        again = cli("local", "up", "--json", env=env)
        assert json.loads(again.stdout)["started"] is False
    finally:
        down = cli("local", "down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert _port_free(info["port"])
    st = cli("local", "status", "--json", env=env)
    assert json.loads(st.stdout)["running"] is False
    second = cli("local", "down", env=env)
    assert second.returncode == 0 and "not running" in second.stdout


def test_emulator_binds_loopback_only_and_has_no_docker(tmp_path):
    emu = Emulator(tmp_path)
    status, started = emu.up()
    try:
        assert started
        # Listening on 127.0.0.1 only: /proc/net/tcp shows the local address of the listener.
        port_hex = f"{status.port:04X}"
        with open("/proc/net/tcp") as fh:
            listeners = [line.split() for line in fh.readlines()[1:]]
        ours = [cols[1] for cols in listeners if cols[1].endswith(":" + port_hex) and cols[3] == "0A"]
        assert ours == ["0100007F:" + port_hex]
        with open(f"/proc/{status.pid}/environ", "rb") as fh:
            environ = fh.read().split(b"\0")
        assert b"DOCKER_HOST=unix:///nonexistent/stageflow-no-docker.sock" in environ
        import urllib.request

        cfg = json.loads(urllib.request.urlopen(f"{status.endpoint}/moto-api/config").read())
        assert cfg["lambda"]["use_docker"] is False
    finally:
        emu.down()


def test_reset_clears_state(aws, emulator):
    aws.client("sqs").create_queue(QueueName="q1")
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{emulator.endpoint}/moto-api/reset", method="POST")
    ).read()
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []


def test_stale_record_is_reported_and_replaced(tmp_path):
    emu = Emulator(tmp_path)
    emu.dir.mkdir(parents=True)
    emu.record.write_text(json.dumps({"pid": 999999, "port": 1, "started_at": 0}))
    st = emu.status()
    assert st.running is False and st.stale is True
    status, started = emu.up()
    try:
        assert started and status.running
    finally:
        emu.down()
