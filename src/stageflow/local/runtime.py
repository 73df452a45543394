"""The local Lambda runtime: the emulator's Invoke runs the function's exact zip.

moto without Docker answers every Invoke with a canned string, so nothing in local mode ever ran the
built artifact. This module replaces moto's ``LambdaBackend.invoke`` (inside the emulator process,
applied by :mod:`stageflow.local.server`) with what Lambda does:

- **Which code**: the qualifier is resolved as Lambda does — ``$LATEST``, a version, or an alias; an
  alias with ``RoutingConfig.AdditionalVersionWeights`` picks the version by weight (the
  ``x-amz-executed-version`` header says which ran).
- **How**: the version's zip (the bytes the emulator holds, keyed by ``CodeSha256``) is extracted
  once, and a worker process (:mod:`stageflow.local.lambda_worker`) runs it with the runtime's own
  Python (``python3.12`` → CPython 3.12 found on PATH or under pyenv, see :mod:`stageflow.pythons`),
  ``-S -s``: only the zip, then boto3 (which Lambda's runtime provides, compiled for that Python:
  :mod:`stageflow.local.runtime_lib`) — never the interpreter's or
  stageflow's site-packages, so a dependency missing from the zip fails here as it would in Lambda.
  The environment is the function's variables plus what Lambda sets (``AWS_LAMBDA_*``, ``_HANDLER``,
  region) and the emulator's endpoint with dummy credentials; nothing is inherited from the emulator's
  own environment (no proxies, no real credentials).
- **Lifecycle**: a worker imports the handler once (init, 10 s) and then serves invocations one at a
  time (warm starts), as an execution environment does; a busy worker means another one starts
  (concurrency). An invocation longer than the function's ``Timeout`` kills its worker and answers
  ``Sandbox.Timedout``; an unhandled exception answers its error with ``X-Amz-Function-Error:
  Unhandled``; an import error at init answers ``Runtime.ImportModuleError``, as Lambda does.
- **What it leaves**: the invocation's output as a log stream of ``/aws/lambda/<name>`` (when the group
  exists) and the tail in ``x-amz-log-result`` for ``LogType=Tail``; the per-version ``AWS/Lambda``
  metrics Lambda publishes (``Invocations``, ``Errors``, ``Duration``) by function, by resource
  (``name:qualifier``) and, for an alias, by ``ExecutedVersion`` — so traffic through the alias yields
  the metrics the canary's metric source reads.

Fault hooks (the chaos stage, :mod:`stageflow.local.faults`): a fault set on a function version adds
latency, fails or times out that version's invocations; an Invoke's client context may name the
(virtual) minute its metrics belong to; every log ends with Lambda's ``REPORT`` line.

What cannot run here is refused with a client error (``InvalidRuntimeException``) naming why: an
interpreter this machine lacks, an ``arm64`` function on an x86_64 machine (checked statically at
build instead), a container-image function.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import io
import json
import os
import platform
import queue
import random
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stageflow import process, pythons
from stageflow.local import faults, runtime_lib

INIT_TIMEOUT_S = 10.0
MAX_WORKERS_PER_KEY = 8
# idle execution environments of all functions and versions together; the least recently used goes first
# (Lambda reclaims idle environments too: old versions' workers no longer pile up in a long-lived emulator)
MAX_IDLE_WORKERS = 16
LOG_TAIL_BYTES = 4096
LAMBDA_NAMESPACE = "AWS/Lambda"
_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


class RuntimeUnavailable(Exception):
    """This machine cannot run the function (interpreter, architecture, package type)."""


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs of one function version (read from the emulator's model)."""

    name: str
    version: str
    arn: str
    runtime: str
    handler: str
    code_sha: str
    timeout_s: float
    memory_mb: int
    environment: tuple[tuple[str, str], ...]
    architecture: str = "x86_64"
    region: str = "us-east-1"

    @property
    def key(self) -> tuple:
        return (self.name, self.version, self.code_sha, self.runtime, self.handler, self.environment)


@dataclass(frozen=True)
class Invocation:
    payload: bytes
    function_error: str | None  # "Unhandled" or None
    log: str
    executed_version: str
    duration_ms: float


def choose_version(function_version: str, routing: Mapping[str, Any] | None, draw: float) -> str:
    """The version an alias invocation runs: an extra version with weight w takes draws below w."""
    weights = (routing or {}).get("AdditionalVersionWeights") or {}
    edge = 0.0
    for version, weight in sorted(weights.items()):
        edge += float(weight)
        if draw < edge:
            return str(version)
    return str(function_version)


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": []}
    ).encode()


class WorkerGone(Exception):
    """The worker died or did not answer in time."""


class Worker:
    """One execution environment: a child process running one function version's code."""

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd: Path):
        self._bg = process.spawn(
            argv, cwd=cwd, env=env, stdin=process.PIPE, stdout=process.PIPE, stderr=process.PIPE
        )
        self._answers: queue.Queue[dict | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read_answers, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read_answers(self) -> None:
        assert self._bg.stdout is not None
        for line in self._bg.stdout:
            try:
                self._answers.put(json.loads(line))
            except ValueError:
                continue
        self._answers.put(None)  # the worker is gone

    def _drain_stderr(self) -> None:
        assert self._bg.stderr is not None
        for line in self._bg.stderr:
            self.stderr_tail.append(line.rstrip("\n"))

    def next_answer(self, timeout: float) -> dict:
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise WorkerGone("timeout") from None
        if answer is None:
            raise WorkerGone("exited")
        return answer

    def send(self, request: dict) -> None:
        assert self._bg.stdin is not None
        try:
            self._bg.stdin.write(json.dumps(request) + "\n")
            self._bg.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerGone("exited") from exc

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._bg.stop(grace_s=1.0)


class LocalRuntime:
    """Runs function versions from their zips; one per emulator process."""

    def __init__(
        self,
        endpoint: str,
        workdir: Path,
        *,
        environ: Mapping[str, str] | None = None,
        draw: Callable[[], float] = random.random,
        host_arch: str | None = None,
        max_idle: int = MAX_IDLE_WORKERS,
    ):
        self.endpoint = endpoint
        self.workdir = Path(workdir)
        self.environ = dict(os.environ if environ is None else environ)
        self.draw = draw
        self.host_arch = host_arch or _HOST_ARCH.get(platform.machine().lower(), platform.machine())
        self._idle: dict[tuple, list[Worker]] = collections.defaultdict(list)
        self._lru: collections.OrderedDict[int, tuple[tuple, Worker]] = collections.OrderedDict()
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._extract_lock = threading.Lock()

    # -- the code ------------------------------------------------------------------------------------
    def task_dir(self, code_sha: str, code: bytes) -> Path:
        """The zip extracted once per CodeSha256 (Lambda's /var/task), read-only from then on."""
        name = hashlib.sha256(code_sha.encode()).hexdigest()[:24]
        target = self.workdir / "task" / name
        with self._extract_lock:
            if not target.is_dir():
                tmp = Path(tempfile.mkdtemp(dir=self.workdir, prefix=".extract-"))
                with zipfile.ZipFile(io.BytesIO(code)) as zf:
                    zf.extractall(tmp)  # noqa: S202 - our own zip, written by the build stage
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp.rename(target)
        return target

    # -- the environment -----------------------------------------------------------------------------
    def child_env(self, spec: FunctionSpec, task: Path) -> dict[str, str]:
        env = dict(spec.environment)
        env.update(
            {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "TZ": ":UTC",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "LAMBDA_TASK_ROOT": str(task),
                "_HANDLER": spec.handler,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                # the emulator, never AWS: dummy credentials, every client's endpoint, no IMDS
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - the emulator's dummy credentials
                "AWS_SESSION_TOKEN": "testing",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        return env

    def _start(self, spec: FunctionSpec, code: bytes) -> tuple[Worker | None, dict | None]:
        """A new worker, initialised; or (None, the init error answer)."""
        if spec.architecture != self.host_arch:
            raise RuntimeUnavailable(
                f"{spec.name} is an {spec.architecture} function and this machine is {self.host_arch}: "
                "it cannot run here (its zip is checked statically at build)"
            )
        try:
            python = pythons.find(spec.runtime, self.environ)
        except (ValueError, pythons.RuntimeMissing) as exc:
            raise RuntimeUnavailable(getattr(exc, "message", str(exc))) from None
        task = self.task_dir(spec.code_sha, code)
        worker_py = Path(__file__).with_name("lambda_worker.py")
        lib = runtime_lib.library(self.workdir, spec.runtime, python)  # compiled, as Lambda ships it
        argv = [str(python), "-S", "-s", str(worker_py), str(task), str(lib)]
        worker = Worker(argv, self.child_env(spec, task), task)
        try:
            first = worker.next_answer(INIT_TIMEOUT_S)
        except WorkerGone as why:
            worker.stop()
            detail = "; ".join(list(worker.stderr_tail)[-3:])
            return None, {
                "error": {
                    "errorType": "Runtime.ExitError" if str(why) == "exited" else "Sandbox.Timedout",
                    "errorMessage": f"the runtime did not start ({why}): {detail}".rstrip(": "),
                },
                "log": "\n".join(worker.stderr_tail),
            }
        if first.get("init") != "ok":
            worker.stop()
            return None, first
        return worker, None

    # -- invoking ------------------------------------------------------------------------------------
    def invoke(self, spec: FunctionSpec, code: bytes, event: str, *, invoked_arn: str) -> tuple[dict, float]:
        """Run one invocation; (the worker's answer, duration in ms)."""
        with self._lock:
            idle = self._idle[spec.key]
            worker = idle.pop() if idle else None
            if worker is not None:
                del self._lru[id(worker)]
        start = time.monotonic()
        if worker is None:
            worker, init_error = self._start(spec, code)
            if worker is None:
                return init_error or {}, (time.monotonic() - start) * 1000
        deadline_ms = int(time.time() * 1000 + spec.timeout_s * 1000)
        request = {"event": event, "request_id": str(uuid.uuid4()), "deadline_ms": deadline_ms,
                   "invoked_arn": invoked_arn}  # fmt: skip
        began = time.monotonic()
        try:
            worker.send(request)
            answer = worker.next_answer(spec.timeout_s)
        except WorkerGone as why:
            worker.stop()
            took = time.monotonic() - began
            if str(why) == "timeout":
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                msg = f"{stamp} {request['request_id']} Task timed out after {spec.timeout_s:.2f} seconds"
                return {
                    "error": {"errorType": "Sandbox.Timedout", "errorMessage": msg},
                    "log": msg,
                }, took * 1000
            detail = "; ".join(list(worker.stderr_tail)[-3:])
            msg = f"RequestId: {request['request_id']} Error: Runtime exited: {detail}".rstrip(": ")
            return {"error": {"errorType": "Runtime.ExitError", "errorMessage": msg}, "log": msg}, took * 1000
        took = (time.monotonic() - began) * 1000
        with self._lock:
            evicted = [] if len(self._idle[spec.key]) < MAX_WORKERS_PER_KEY else [worker]
            if not evicted:
                self._idle[spec.key].append(worker)
                self._lru[id(worker)] = (spec.key, worker)
            while len(self._lru) > self.max_idle:
                key, oldest = self._lru.popitem(last=False)[1]
                self._idle[key].remove(oldest)
                evicted.append(oldest)
        for w in evicted:
            w.stop()
        return answer, took

    def close(self) -> None:
        with self._lock:
            workers = [w for ws in self._idle.values() for w in ws]
            self._idle.clear()
            self._lru.clear()
        for w in workers:
            w.stop()


# -- inside moto --------------------------------------------------------------------------------------
def spec_of(fn: Any) -> FunctionSpec:
    env = tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items()))
    return FunctionSpec(
        name=fn.function_name,
        version=str(fn.version),
        arn=fn.function_arn,
        runtime=str(fn.run_time or ""),
        handler=str(fn.handler or ""),
        code_sha=str(fn.code_sha_256 or ""),
        timeout_s=float(fn.timeout or 3),
        memory_mb=int(fn.memory_size or 128),
        environment=env,
        architecture=(fn.architectures or ["x86_64"])[0],
        region=fn.region,
    )


def metric_data(
    spec: FunctionSpec, qualifier: str | None, alias: str | None, ms: float, errored: bool,
    at: datetime | None = None,
) -> list[dict]:  # fmt: skip
    """The AWS/Lambda datapoints Lambda publishes for one invocation (naive UTC times, as moto keeps
    the ones PutMetricData brings: an aware one would break every later query's comparison); ``at``:
    the chaos stage's virtual minute (local/faults.py), else now."""
    now = at or datetime.now(UTC).replace(tzinfo=None)
    sets = [[{"Name": "FunctionName", "Value": spec.name}]]
    if qualifier and qualifier != "$LATEST":
        sets.append([{"Name": "FunctionName", "Value": spec.name},
                     {"Name": "Resource", "Value": f"{spec.name}:{qualifier}"}])  # fmt: skip
    if alias:
        sets.append(
            [
                {"Name": "FunctionName", "Value": spec.name},
                {"Name": "Resource", "Value": f"{spec.name}:{alias}"},
                {"Name": "ExecutedVersion", "Value": spec.version},
            ]
        )
    out = []
    for dims in sets:
        for name, value, unit in (
            ("Invocations", 1.0, "Count"),
            ("Errors", float(errored), "Count"),
            ("Duration", round(ms, 3), "Milliseconds"),
        ):
            out.append(
                {"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": value, "Unit": unit}
            )
    return out


def apply(endpoint: str, workdir: Path) -> LocalRuntime:
    """Make the emulator's Invoke run functions' zips (called once, in the emulator process)."""
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.core.exceptions import JsonRESTError

    runtime = LocalRuntime(endpoint, workdir)

    class InvalidRuntime(JsonRESTError):
        code = 400

        def __init__(self, message: str):
            super().__init__("InvalidRuntimeException", message)

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        name = (
            function_name.split(":")[6] if function_name.startswith("arn:") else function_name.split(":")[0]
        )
        qualifier = qualifier or (
            function_name.split(":")[-1] if function_name.count(":") in (1, 7) else None
        )
        alias = None
        target_qualifier = qualifier
        if qualifier and qualifier != "$LATEST" and not qualifier.isdigit():
            alias_obj = self.get_alias(qualifier, name)  # unknown alias: moto's own ResourceNotFound
            alias = qualifier
            target_qualifier = choose_version(
                alias_obj.function_version, alias_obj.routing_config, runtime.draw()
            )
        fn = self.get_function(name, target_qualifier)
        if getattr(fn, "package_type", "Zip") == "Image":
            raise InvalidRuntime(f"{name} is a container-image function: the local runtime runs zips only")
        spec = spec_of(fn)
        fault = faults.REGISTRY.fault_for(spec.name, spec.version)  # the chaos stage's hook
        try:
            answer, ms = faults.run_with_fault(fault, spec.timeout_s, lambda: runtime.invoke(
                spec, fn.code_bytes, body or "{}", invoked_arn=fn.function_arn))  # fmt: skip
        except RuntimeUnavailable as exc:
            raise InvalidRuntime(str(exc)) from None
        error = answer.get("error")
        payload = (
            json.dumps(error).encode() if error is not None else str(answer.get("payload", "null")).encode()
        )
        log = str(answer.get("log") or "")
        log = (log + "\n" if log else "") + faults.report_line(str(uuid.uuid4()), ms, spec.memory_mb)
        if error is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-executed-version"] = spec.version
        tail = log.encode("utf-8")[-LOG_TAIL_BYTES:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
        _record(fn, spec, qualifier, alias, ms, error is not None, log, faults.metric_time(headers))
        response_headers["Content-Length"] = str(len(payload))
        return payload

    # without Docker moto serves Lambda from its "simple" backend (a canned answer): both get this
    LambdaBackend.invoke = invoke
    LambdaSimpleBackend.invoke = invoke
    _pass_qualifier()
    return runtime


def _pass_qualifier() -> None:
    """moto's Invoke handler reads ``qualifier`` (lower case) and so never sees ``?Qualifier=``: read it."""
    from urllib.parse import unquote

    from moto.awslambda.responses import LambdaResponse
    from moto.utilities.aws_headers import amz_crc32

    @amz_crc32
    def response_invoke(self):
        headers: dict[str, str] = {}
        name = unquote(self.path.rsplit("/", 2)[-2])
        qualifier = self.querystring.get("Qualifier", [None])[0]
        payload = self.backend.invoke(name, qualifier, self.body, self.headers, headers)
        headers["content-type"] = "application/json"
        kind = self.headers.get("X-Amz-Invocation-Type")
        if kind == "Event":
            return 202, {**headers, "status": "202"}, payload
        if kind == "DryRun":
            return 204, {**headers, "status": "204"}, payload
        if self.headers.get("X-Amz-Log-Type") != "Tail":
            headers.pop("x-amz-log-result", None)
        return 200, headers, payload

    LambdaResponse.invoke = response_invoke


def _record(fn: Any, spec: FunctionSpec, qualifier: str | None, alias: str | None, ms: float, errored: bool,
            log: str, at: datetime | None = None) -> None:  # fmt: skip
    """Metrics and the log stream, as Lambda leaves them (a missing log group is no error here)."""
    from moto.cloudwatch.models import cloudwatch_backends

    with contextlib.suppress(Exception):
        backend = cloudwatch_backends[fn.account_id][fn.region]
        backend.put_metric_data(LAMBDA_NAMESPACE, metric_data(spec, qualifier, alias, ms, errored, at))
    if log:
        with contextlib.suppress(Exception):
            fn.save_logs(log)


def clean(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
