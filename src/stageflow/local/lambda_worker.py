"""One Lambda execution environment, run by the function's own Python (not stageflow's).

Started by :mod:`stageflow.local.runtime` as ``python -S -s lambda_worker.py TASK_DIR RUNTIME_LIB``:
no site-packages of the interpreter (only what the zip holds, like Lambda's ``/var/task``, then the
runtime's boto3 in ``RUNTIME_LIB``, like Lambda's ``/var/runtime``). Standard library only, and it
must run on every Python a Lambda runtime names (3.9+): it imports nothing from stageflow.

Protocol, one JSON object per line: on start the worker imports the handler (Lambda's init phase)
and writes ``{"init": "ok"}`` or ``{"init": "error", "error": {...}}`` (then exits); for each request
line read from stdin (``{"event": "<json>", "request_id": ..., "deadline_ms": ...}``) it writes
``{"payload": "<json>"}`` or ``{"error": {...}}``, with ``"log"`` (what the invocation printed or
logged). The protocol runs on a private copy of stdout; the handler's own prints go to the log.
"""

import importlib
import io
import json
import logging
import os
import sys
import time
import traceback


class Context:
    def __init__(self, request: dict):
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = request.get("invoked_arn", "")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request.get("request_id", "")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(request.get("deadline_ms") or 0)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict:
    return {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__)[1:],
    }


def load_handler(spec: str):
    """``package.module.function`` → the function, with Lambda's error types on failure."""
    module_name, _, attr = spec.rpartition(".")
    if not module_name:
        return None, {
            "errorMessage": f"Bad handler '{spec}': not enough values to unpack",
            "errorType": "Runtime.MalformedHandlerName",
            "requestId": "",
            "stackTrace": [],
        }
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as exc:  # noqa: BLE001 - the function's own import errors are its answer
        return None, _error(
            exc, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        )
    fn = getattr(module, attr, None)
    if fn is None:
        return None, {
            "errorMessage": f"Handler '{attr}' missing on module '{module_name}'",
            "errorType": "Runtime.HandlerNotFound",
            "requestId": "",
            "stackTrace": [],
        }
    return fn, None


class _Tee(io.TextIOBase):
    """Collects what an invocation writes and passes it on to the real stream."""

    def __init__(self, real, sink: list):
        self.real = real
        self.sink = sink

    def write(self, text):
        self.sink.append(text)
        self.real.write(text)
        return len(text)

    def flush(self):
        self.real.flush()


def main(argv: list) -> int:
    task_dir, runtime_lib = argv[1], argv[2]
    sys.path[0] = task_dir  # the script's own folder must not shadow the function's modules
    if runtime_lib not in sys.path:
        sys.path.append(runtime_lib)
    os.chdir(task_dir)
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # the function's prints (fd 1) go to the log stream
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), encoding="utf-8", write_through=True)
    sink: list = []
    real_out, real_err = sys.stdout, sys.stderr
    logging.basicConfig(stream=_Tee(real_err, sink), level=logging.INFO, format="[%(levelname)s] %(message)s")
    sys.stdout, sys.stderr = _Tee(real_out, sink), _Tee(real_err, sink)
    handler, init_error = load_handler(os.environ.get("_HANDLER", ""))
    if init_error is not None:
        proto.write(json.dumps({"init": "error", "error": init_error, "log": "".join(sink)}) + "\n")
        return 1
    proto.write(json.dumps({"init": "ok", "log": "".join(sink)}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        sink.clear()
        try:
            event = json.loads(request["event"]) if request.get("event") else {}
            result = handler(event, Context(request))
            answer = {"payload": json.dumps(result)}
        except Exception as exc:  # noqa: BLE001 - an unhandled error is the invocation's answer
            answer = {"error": _error(exc)}
        answer["log"] = "".join(sink)
        proto.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
