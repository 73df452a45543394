"""The emulator process: moto's server app bound to 127.0.0.1 on a free port.

Served by waitress, not werkzeug's development server: werkzeug answers every request with
``Connection: close``, so each AWS call opened a new TCP connection and the server a new thread for
it (340 of each in a 60-minute rehearsal, about a tenth of the emulator's CPU; issue 13). waitress
keeps botocore's connections alive and serves them from a fixed pool of threads. Every response
leaves in one piece (status line, headers and body in one write, see :func:`one_write_channel`):
when waitress flushed the headers alone, Terraform >= 1.11's AWS SDK sometimes closed the connection
before reading the body of its state lock's ``PutItem`` answer, sent the ``PutItem`` again, failed
its own condition and held its own state lock until it timed out.

Started by :mod:`stageflow.local.emulator` as ``python -m stageflow.local.server --port-file F``.
It binds first and then writes the port it got into ``F``, so there is no race for the port. Lambda
invokes are kept away from any Docker engine: moto's ``use_docker`` is off and ``DOCKER_HOST`` points
at a socket that does not exist; instead :mod:`stageflow.local.runtime` runs each function's zip with
the runtime's own Python.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stageflow-emulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)

    # Before moto is imported: never reach a Docker engine, never load managed policies lazily.
    os.environ["DOCKER_HOST"] = "unix:///nonexistent/stageflow-no-docker.sock"
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    from moto.core.config import default_user_config
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress.server import create_server

    default_user_config["lambda"]["use_docker"] = False
    default_user_config["batch"]["use_docker"] = False

    from stageflow.local import apigateway_fidelity, fidelity, moto_fixes

    fidelity.apply()  # fields AWS keeps and moto drops (no perpetual Terraform diff)
    apigateway_fidelity.apply()  # the same for the front door's REST API (and its UpdateIntegration)
    moto_fixes.apply()  # a long-lived emulator stays as fast as a fresh one (see the module)
    from stageflow.local import iam_enforcement

    iam_enforcement.apply()  # resources and AWS's statement semantics for moto's IAM check (off by default)

    from stageflow.local import frontdoor
    from stageflow.local.faults import control_app

    # the chaos stage's fault hooks; /_frontdoor/{api}/{stage}/...: the REST API's Lambda proxy through
    # the local runtime
    app = frontdoor.wrap(control_app(DomainDispatcherApplication(create_backend_app)))
    # threads: Terraform's provider opens a dozen connections at once while it applies
    server = create_server(app, host="127.0.0.1", port=args.port, threads=8, ident="stageflow-emulator")
    server.channel_class = one_write_channel()
    port = server.effective_port
    # Invoke runs the function's zip with the runtime's Python (see local/runtime.py)
    from stageflow.local import runtime as lambda_runtime

    workdir = tempfile.mkdtemp(prefix="stageflow-lambda-")
    local_runtime = lambda_runtime.apply(f"http://127.0.0.1:{port}", Path(workdir))
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(str(port))
    os.replace(tmp, args.port_file)

    def _stop(signum, frame):  # noqa: ARG001
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    print(f"stageflow emulator listening on http://127.0.0.1:{port} pid {os.getpid()}", flush=True)
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close()
        local_runtime.close()
        lambda_runtime.clean(Path(workdir))
    return 0


def one_write_channel():
    """waitress's channel, but a response's headers go out in the same write as its first body bytes.

    waitress queues the headers and the body with two ``write_soon`` calls; its main loop, woken by
    any other connection, may send the headers alone in between (under load: a third of the answers
    to Terraform). A Go AWS SDK client (Terraform's S3 backend) then sometimes closes the connection
    before the body arrives and retries the call: harmless for a read, but a retried ``PutItem ...
    attribute_not_exists(LockID)`` fails on the lock its own first attempt took (issue 22). Bytes
    queued while the headers are written are held and queued once, joined, in the same order."""
    from waitress.channel import HTTPChannel
    from waitress.task import WSGITask

    class OneWriteTask(WSGITask):
        def write(self, data):
            if self.wrote_header:
                return super().write(data)
            self.channel.held = []
            try:
                super().write(data)
            finally:
                self.channel.release_held()

    class OneWriteChannel(HTTPChannel):
        task_class = OneWriteTask
        held: list[bytes] | None = None

        def write_soon(self, data):
            if self.held is None:
                return super().write_soon(data)
            if isinstance(data, bytes):
                self.held.append(data)
                return len(data)
            self.release_held()  # a file wrapper: what is held goes first
            return super().write_soon(data)

        def release_held(self) -> None:
            held, self.held = self.held, None
            if held:
                super().write_soon(b"".join(held))

    return OneWriteChannel


if __name__ == "__main__":
    sys.exit(main())
