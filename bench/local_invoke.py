"""Local invoke (the emulator running the function's zip) vs calling the handler in this process.

Three figures, measured in one run on one emulator (issue 23):
- ``in_process``: ``handler(event, None)`` of the sample service, imported here (the floor);
- ``warm``: ``lambda.invoke`` through the emulator, the execution environment already up;
- ``cold``: the first invoke of a new version (a worker starts: interpreter, imports, then the call).
Cold starts are made by changing an environment variable and publishing (each version is a new
execution environment, as in Lambda).

Usage: python bench/local_invoke.py [--warm 200] [--cold 10]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
EVENT = {"rawPath": "/health", "requestContext": {"http": {"method": "GET"}}}
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip


def sample_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted((REPO / "app" / "service").rglob("*.py")):
            zf.write(path, path.relative_to(REPO / "app").as_posix())
    return buf.getvalue()


def ms(samples: list[float]) -> dict:
    s = sorted(samples)
    return {
        "n": len(s),
        "median_ms": round(statistics.median(s) * 1000, 3),
        "p95_ms": round(s[max(0, int(len(s) * 0.95) - 1)] * 1000, 2),
        "max_ms": round(s[-1] * 1000, 2),
    }


def in_process(n: int) -> list[float]:
    sys.path.insert(0, str(REPO / "app"))
    from service.handler import handler  # the sample's handler, in this process

    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        handler(dict(EVENT), None)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    from stageflow.aws import AwsClients, AwsTarget
    from stageflow.local.emulator import Emulator

    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=200)
    ap.add_argument("--cold", type=int, default=10)
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="stageflow-bench-invoke-"))
    emu = Emulator(state)
    status, _ = emu.up()
    try:
        clients = AwsClients(AwsTarget("us-east-1", True, status.endpoint))
        iam, lam = clients.client("iam"), clients.client("lambda")
        role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        lam.create_function(
            FunctionName="bench",
            Runtime="python3.11",
            Role=role,
            Handler="service.handler.handler",
            Code={"ZipFile": sample_zip()},
            Timeout=10,
            Publish=True,
        )
        payload = json.dumps(EVENT).encode()
        cold, warm = [], []
        for i in range(args.cold):
            lam.update_function_configuration(
                FunctionName="bench", Environment={"Variables": {"RUN": str(i)}}
            )
            lam.get_waiter("function_updated_v2").wait(FunctionName="bench")
            version = lam.publish_version(FunctionName="bench")["Version"]
            t0 = time.perf_counter()
            resp = lam.invoke(FunctionName="bench", Qualifier=version, Payload=payload)
            cold.append(time.perf_counter() - t0)
            assert json.loads(resp["Payload"].read())["statusCode"] == 200, "the sample did not answer"
        for _ in range(args.warm):
            t0 = time.perf_counter()
            resp = lam.invoke(FunctionName="bench", Qualifier=version, Payload=payload)
            resp["Payload"].read()
            warm.append(time.perf_counter() - t0)
        local = in_process(args.warm)
    finally:
        emu.down()
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "in_process": ms(local),
        "warm": ms(warm),
        "cold": ms(cold),
    }
    # the sample's handler takes microseconds in-process: what a local invoke adds (an HTTP call to the
    # emulator, the worker's pipe, JSON both ways) is the figure, not a ratio to a near-zero floor
    result["warm_overhead_ms"] = round(result["warm"]["median_ms"] - result["in_process"]["median_ms"], 3)
    result["cold_overhead_ms"] = round(result["cold"]["median_ms"] - result["in_process"]["median_ms"], 3)
    (HERE / "results" / "local_invoke.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
