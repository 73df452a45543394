"""The composition root: the only place that creates AWS clients, the emulator, runners and clocks.

CLI commands and nox sessions get a :class:`Factory` and ask it for what they need; tests build one
pointed at a temporary state directory and the emulator they started.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from stageflow.clock import Clock, SystemClock
from stageflow.config import Config, find_config, load
from stageflow.report import Reporter


class Factory:
    def __init__(
        self,
        *,
        config_path: str | Path | None = None,
        local: bool | None = None,
        reporter: Reporter | None = None,
        state_dir: str | Path | None = None,
        clock: Clock | None = None,
    ):
        self._config_path = Path(config_path) if config_path else None
        self._local_flag = local
        self.reporter = reporter or Reporter()
        self._state_dir = Path(state_dir) if state_dir else None
        self._clock = clock

    # -- configuration ---------------------------------------------------------------------------
    @cached_property
    def config(self) -> Config:
        return load(self._config_path or find_config())

    @property
    def root(self) -> Path:
        if self._config_path is not None or "config" in self.__dict__:
            return self.config.root
        return find_config().parent

    @cached_property
    def state_dir(self) -> Path:
        if self._state_dir is not None:
            return self._state_dir
        env = os.environ.get("STAGEFLOW_STATE_DIR")
        return Path(env) if env else self.root / ".stageflow"

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = SystemClock()
        return self._clock

    # -- local mode and AWS ------------------------------------------------------------------------
    @cached_property
    def local(self) -> bool:
        from stageflow.aws import detect_local_mode

        local, reason = detect_local_mode(self._local_flag)
        if local and reason == "no AWS credentials found":
            self.reporter.info(
                "local",
                "",
                "no AWS credentials found: using the local AWS emulator "
                "(pass --no-local or set STAGEFLOW_LOCAL=0 to refuse)",
            )
        return local

    @cached_property
    def emulator(self):
        from stageflow.local.emulator import Emulator

        return Emulator(self.state_dir)

    def ensure_local(self):
        """Start the emulator on demand; a fresh one gets the Terraform state bucket and lock table."""
        from stageflow.aws import AwsClients, AwsTarget
        from stageflow.local.bootstrap import bootstrap

        status, started = self.emulator.up()
        if started:
            self.reporter.info("local", "emulator", f"started on {status.endpoint} (pid {status.pid})")
            bootstrap(AwsClients(AwsTarget(self.region, True, status.endpoint)), self.region)
        return status

    @property
    def region(self) -> str:
        return self.config.service.region if self._has_config() else "us-east-1"

    def _has_config(self) -> bool:
        try:
            self.config  # noqa: B018
        except Exception:  # noqa: BLE001
            return False
        return True

    @cached_property
    def aws_target(self):
        from stageflow.aws import AwsTarget

        if self.local:
            status = self.ensure_local()
            return AwsTarget(self.region, True, status.endpoint)
        return AwsTarget(self.region, False, os.environ.get("STAGEFLOW_AWS_ENDPOINT") or None)

    @cached_property
    def aws(self):
        from stageflow.aws import AwsClients

        return AwsClients(self.aws_target)

    def child_env(self) -> dict[str, str]:
        """Extra environment for child processes (terraform, docker) for the current target."""
        from stageflow.aws import local_env

        if self.local:
            return local_env(self.aws_target.endpoint, self.region)
        return {}
