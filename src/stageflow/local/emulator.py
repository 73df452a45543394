"""Start, stop, inspect and reset the embedded AWS emulator (moto in server mode).

The emulator runs as a background process bound to 127.0.0.1; its PID, port and log live under
``<state_dir>/local/``. Its state lasts until :meth:`Emulator.down`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from stageflow.errors import EnvironmentFailure
from stageflow.process import pid_alive

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class EmulatorStatus:
    running: bool
    pid: int | None
    port: int | None
    endpoint: str | None
    log: str
    started_at: float | None = None
    stale: bool = False  # a record exists but its process is gone

    def to_json(self) -> dict:
        return asdict(self)


def _pid_alive(pid: int) -> bool:
    """:func:`stageflow.process.pid_alive`, reaping the server when it is our exited child."""
    if pid_alive(pid):
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    return False


# the emulator is on loopback: never through HTTP(S)_PROXY / ALL_PROXY (issue 24 item 7)
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_ok(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        # bandit B310 is safe here: endpoint is always http://127.0.0.1:PORT, built by this module
        # from the port number
        with DIRECT.open(f"{endpoint}/moto-api/config", timeout=timeout) as resp:  # noqa: S310 # nosec B310
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Emulator:
    """The local AWS emulator's lifecycle, recorded in ``<state_dir>/local/emulator.json``."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "local"
        self.record = self.dir / "emulator.json"
        self.log = self.dir / "emulator.log"
        self.port_file = self.dir / "port"

    # -- inspection ---------------------------------------------------------------------------
    def _read_record(self) -> dict | None:
        try:
            return json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def status(self) -> EmulatorStatus:
        rec = self._read_record()
        if not rec:
            return EmulatorStatus(False, None, None, None, str(self.log))
        pid, port = int(rec["pid"]), int(rec["port"])
        endpoint = f"http://127.0.0.1:{port}"
        alive = _pid_alive(pid) and _http_ok(endpoint)
        return EmulatorStatus(
            running=alive,
            pid=pid if alive else None,
            port=port if alive else None,
            endpoint=endpoint if alive else None,
            log=str(self.log),
            started_at=rec.get("started_at"),
            stale=not alive,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def up(self, port: int = 0) -> tuple[EmulatorStatus, bool]:
        """Start the emulator unless it runs; returns (status, started_now)."""
        current = self.status()
        if current.running:
            return current, False
        if current.stale:
            self.record.unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env["DOCKER_HOST"] = "unix:///nonexistent/stageflow-no-docker.sock"
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        env.pop("MOTO_DOCKER_NETWORK_NAME", None)
        argv = [
            sys.executable,
            "-m",
            "stageflow.local.server",
            "--port",
            str(port),
            "--port-file",
            str(self.port_file),
        ]
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(  # noqa: S603
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        got_port = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EnvironmentFailure(
                    f"the local AWS emulator exited at start with code {proc.returncode}",
                    f"see {self.log}",
                )
            if got_port is None and self.port_file.exists():
                with contextlib.suppress(ValueError, OSError):
                    got_port = int(self.port_file.read_text().strip())
            if got_port is not None and _http_ok(f"http://127.0.0.1:{got_port}", timeout=1.0):
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            raise EnvironmentFailure(
                f"the local AWS emulator did not answer within {START_TIMEOUT_S:.0f} s", f"see {self.log}"
            )
        rec = {"pid": proc.pid, "port": got_port, "started_at": time.time()}
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec), encoding="utf-8")
        os.replace(tmp, self.record)
        return self.status(), True

    def down(self, timeout: float = 10.0) -> bool:
        """Stop the emulator we started (by its recorded PID); harmless when none runs."""
        rec = self._read_record()
        if not rec:
            return False
        pid = int(rec["pid"])
        stopped = False
        if _pid_alive(pid) and self._is_our_server(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.05)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped = True
        self.record.unlink(missing_ok=True)
        self.port_file.unlink(missing_ok=True)
        return stopped

    @staticmethod
    def _is_our_server(pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc: trust the record we wrote
        return b"stageflow.local.server" in cmdline

    def reset(self) -> None:
        st = self.status()
        if not st.running:
            raise EnvironmentFailure("the local AWS emulator is not running", "start it: stageflow local up")
        req = urllib.request.Request(f"{st.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        # bandit B310 is safe here: st.endpoint is http://127.0.0.1:PORT, built by status() from the
        # recorded port
        with DIRECT.open(req, timeout=10) as resp:  # nosec B310
            resp.read()
