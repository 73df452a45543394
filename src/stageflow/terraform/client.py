"""A Terraform working directory driven through the argv builders and one runner."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stageflow.errors import EnvironmentFailure
from stageflow.process import CommandNotFound
from stageflow.terraform import args as A
from stageflow.terraform.errors import TerraformError, classify, tail
from stageflow.terraform.runner import CommandRunner, RunResult
from stageflow.terraform.version import TerraformVersion

PLAN_NO_CHANGES, PLAN_ERROR, PLAN_CHANGES = 0, 1, 2


@dataclass(frozen=True)
class StateVersion:
    lineage: str
    serial: int

    def to_json(self) -> dict:
        return {"lineage": self.lineage, "serial": self.serial}


def plan_state_version(plan_file: str) -> StateVersion | None:
    """The (lineage, serial) of the state a saved plan was made against (its ``tfstate`` entry)."""
    try:
        with zipfile.ZipFile(plan_file) as z:
            data = json.loads(z.read("tfstate"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return StateVersion(str(data.get("lineage") or ""), int(data.get("serial") or 0))


class Terraform:
    def __init__(
        self,
        *,
        binary: str,
        workdir: str,
        env: Mapping[str, str],
        runner: CommandRunner,
        timeout: float | None = None,
        lock_timeout: str | None = "0s",
        version: TerraformVersion | None = None,
    ):
        self.binary = binary
        self.workdir = workdir
        self.env = dict(env)
        self.runner = runner
        self.timeout = timeout
        self.lock_timeout = lock_timeout
        self._version = version

    # -- running -----------------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, ok: tuple[int, ...] = (0,), stream: bool = True) -> RunResult:
        full = [self.binary, *argv]
        try:
            result = self.runner.run(
                full, cwd=self.workdir, env=self.env, timeout=self.timeout, stream=stream
            )
        except CommandNotFound:
            from stageflow.errors import MissingBinaryError
            from stageflow.terraform.binary import INSTALL_HINT

            raise MissingBinaryError(f"cannot run {self.binary}", INSTALL_HINT) from None
        if result.returncode not in ok:
            raise classify(full, result.returncode, result.stderr or result.stdout)
        return result

    @property
    def version(self) -> TerraformVersion:
        if self._version is None:
            key = _binary_key(self.binary)
            v = _VERSIONS.get(key) if key else None
            if v is None:
                res = self.run(A.build_version_args(), stream=False)
                v = TerraformVersion.from_version_json(res.stdout)
                if key:
                    _VERSIONS[key] = v
            v.check_supported()
            self._version = v
        return self._version

    # -- commands ----------------------------------------------------------------------------------
    def init(self, opts: A.InitOptions) -> RunResult:
        return self.run(A.build_init_args(opts, self.version))

    def validate(self) -> dict[str, Any]:
        res = self.run(A.build_validate_args(A.ValidateOptions(), self.version), ok=(0, 1), stream=False)
        data = _json(res, "validate -json")
        if res.returncode != 0 and not data.get("diagnostics"):
            raise TerraformError([self.binary, "validate"], res.returncode, tail(res.stderr))
        return data

    def current_workspace(self) -> str | None:
        """The workspace selected in TF_DATA_DIR (Terraform's ``environment`` file), without a process."""
        data_dir = self.env.get("TF_DATA_DIR")
        if not data_dir or not os.path.isfile(os.path.join(data_dir, "terraform.tfstate")):
            return None  # not initialised with a backend yet
        try:
            with open(os.path.join(data_dir, "environment"), encoding="utf-8") as fh:
                return fh.read().strip() or "default"
        except FileNotFoundError:
            return "default"

    def workspace_select_or_create(self, name: str) -> bool:
        """Select ``name``, creating it when it does not exist. True if it was created."""
        if self.current_workspace() == name:
            return False
        opts = A.WorkspaceOptions(name=name, lock_timeout=self.lock_timeout)
        res = self.run(A.build_workspace_select_args(opts, self.version), ok=(0, 1))
        if res.returncode == 0:
            return False
        if "doesn't exist" not in res.stderr and "does not exist" not in res.stderr:
            raise classify([self.binary, "workspace", "select", name], res.returncode, res.stderr)
        # Creating a workspace writes its first state under the lock; allow a short wait for it, and
        # if another run created it meanwhile (or the backend answered late), selecting it is enough.
        new_opts = A.WorkspaceOptions(name=name, lock_timeout=self.lock_timeout or "10s")
        if self.lock_timeout in (None, "0s"):
            new_opts = A.WorkspaceOptions(name=name, lock_timeout="10s")
        created = self.run(A.build_workspace_new_args(new_opts, self.version), ok=(0, 1))
        if created.returncode == 0:
            return True
        again = self.run(A.build_workspace_select_args(opts, self.version), ok=(0, 1))
        if again.returncode == 0:
            return True
        raise classify(
            [self.binary, "workspace", "new", name], created.returncode, created.stderr or created.stdout
        )

    def plan(self, opts: A.PlanOptions) -> bool:
        """Run plan; True when it has changes (exit 2 with -detailed-exitcode)."""
        if opts.lock_timeout is None and opts.lock and self.lock_timeout:
            opts = _replace(opts, lock_timeout=self.lock_timeout)
        ok = (PLAN_NO_CHANGES, PLAN_CHANGES) if opts.detailed_exitcode else (0,)
        res = self.run(A.build_plan_args(opts, self.version), ok=ok)
        return res.returncode == PLAN_CHANGES if opts.detailed_exitcode else True

    def apply(self, opts: A.ApplyOptions) -> RunResult:
        if opts.lock_timeout is None and opts.lock and self.lock_timeout:
            opts = _replace(opts, lock_timeout=self.lock_timeout)
        return self.run(A.build_apply_args(opts, self.version))

    def show_plan(self, plan_file: str) -> dict[str, Any]:
        res = self.run(A.build_show_args(A.ShowOptions(plan_file=plan_file), self.version), stream=False)
        return _json(res, "show -json")

    def outputs(self) -> dict[str, Any]:
        res = self.run(A.build_output_args(A.OutputOptions(), self.version), stream=False)
        return _json(res, "output -json")

    def state_list(self) -> list[str]:
        """Every address in the state (none before the first apply: Terraform then says "No state file
        was found" with exit 1)."""
        res = self.run(["state", "list", "-no-color"], ok=(0, 1), stream=False)
        if res.returncode != 0:
            if "no state file was found" in (res.stderr + res.stdout).lower():
                return []
            raise classify([self.binary, "state", "list"], res.returncode, res.stderr or res.stdout)
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    def state_mv(self, source: str, destination: str) -> RunResult:
        """Rename one object in the state (under the state lock); no resource changes."""
        lock = [f"-lock-timeout={self.lock_timeout}"] if self.lock_timeout else []
        return self.run(["state", "mv", *lock, source, destination], stream=False)

    def state_pull(self) -> dict[str, Any]:
        """The state as Terraform holds it (``{}`` before the first apply); kept in memory only."""
        res = self.run(A.build_state_pull_args(), stream=False)
        return _json(res, "state pull") if res.stdout.strip() else {}

    def state_version(self) -> StateVersion:
        data = self.state_pull()
        return StateVersion(str(data.get("lineage") or ""), int(data.get("serial") or 0))


# `terraform version -json` answered once per binary (path, size, mtime) in this process.
_VERSIONS: dict[tuple, TerraformVersion] = {}


def _binary_key(binary: str) -> tuple | None:
    try:
        st = os.stat(binary)
    except OSError:
        return None
    return (os.path.realpath(binary), st.st_size, st.st_mtime_ns)


def _replace(opts, **changes):
    import dataclasses

    return dataclasses.replace(opts, **changes)


def _json(res: RunResult, what: str) -> dict[str, Any]:
    try:
        data = json.loads(res.stdout or "{}")
    except ValueError:
        raise EnvironmentFailure(
            f"terraform {what} printed no JSON", "see Terraform's output above"
        ) from None
    if not isinstance(data, dict):
        raise EnvironmentFailure(f"terraform {what} printed unexpected JSON")
    return data
