"""The environments' outputs contract on this machine: remembered after an apply, trusted only while what
they name still exists, else read from Terraform.

Files: ``<state_dir>/outputs/<target>-<env>.json`` holding the outputs and the endpoint that names where
the resources live. The composition root builds one :class:`OutputsStore` per process; the target's
parts (its name, its endpoint, its AWS clients, Terraform) are asked on first use, so building the store
starts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from stageflow.errors import NotDeployed
from stageflow.outputs import DeployOutputs, parse_outputs


class OutputsStore:
    def __init__(
        self,
        *,
        state_dir: Path,
        target: Callable[[], str],
        state_endpoint: Callable[[], str | None],
        client: Callable[[str], Any],
        terraform_outputs: Callable[[str], DeployOutputs],
    ):
        """``target``: "local" or "aws"; ``state_endpoint``: the endpoint that names where the resources
        live (the emulator's own, even behind a proxy); ``client``: an AWS client by service name;
        ``terraform_outputs``: ``terraform output`` for an environment (NotDeployed when it has none)."""
        self.state_dir = Path(state_dir)
        self._target = target
        self._state_endpoint = state_endpoint
        self._client = client
        self._terraform_outputs = terraform_outputs
        self._outputs: dict[str, DeployOutputs] = {}
        self._stale: set[str] = set()  # remembered outputs found no longer valid

    def path(self, env_name: str) -> Path:
        return self.state_dir / "outputs" / f"{self._target()}-{env_name}.json"

    def remember(self, env_name: str, out: DeployOutputs) -> None:
        """After an apply: later commands read these instead of running ``terraform output``."""
        path = self.path(env_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"endpoint": self._state_endpoint(), "outputs": out.to_json()}))
        tmp.replace(path)
        self._outputs[env_name] = out

    def get(self, env_name: str, *, cached_only: bool = False) -> DeployOutputs | None:
        """Remembered from this machine's last apply while still valid, else ``terraform output``.
        Resolved once per process. Builds nothing. ``cached_only``: None instead of asking Terraform."""
        if env_name not in self._outputs:
            out = self._remembered(env_name)
            if out is None and cached_only:  # the deploy (which rebuilds what is gone) asks this way
                return None
            if out is None and self._state_lost(env_name):
                raise NotDeployed(
                    f"{env_name} is not deployed on the local AWS emulator: the emulator's state is gone "
                    "(it was restarted or reset, and it keeps everything in memory), so what Terraform "
                    "built there and the deployment history went with it",
                    f"rebuild it: stageflow --local deploy {env_name} (or make demo); see docs/runbook.md",
                )
            if out is None:
                out = self._terraform_outputs(env_name)  # NotDeployed (exit 2) when Terraform has none
                self.remember(env_name, out)
            self._outputs[env_name] = out
        return self._outputs[env_name]

    def _remembered(self, env_name: str) -> DeployOutputs | None:
        path = self.path(env_name)
        try:
            data = json.loads(path.read_text())
            out = parse_outputs(data["outputs"], where=str(path))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        except Exception:  # noqa: BLE001 - a malformed file is no cache
            return None
        if data.get("endpoint") != self._state_endpoint():
            self._stale.add(env_name)
            return None
        try:  # trust them only while what they name exists (an emulator reset removes it all)
            self._client("lambda").get_alias(FunctionName=out.function_name, Name=out.alias_name)
        except ClientError as exc:
            from stageflow.aws import THROTTLING_CODES

            code = (exc.response.get("Error") or {}).get("Code") or ""
            status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            if code in THROTTLING_CODES or status >= 500:  # AWS failing is not "gone": exit 3
                from stageflow.aws import aws_error

                raise aws_error(exc, "checking the remembered outputs") from None
            path.unlink(missing_ok=True)
            self._stale.add(env_name)
            return None
        return out

    def _state_lost(self, env_name: str) -> bool:
        """Local mode: outputs were remembered for this environment, they no longer hold, and the
        emulator has no Terraform state bucket either. The emulator keeps everything in memory, so it was
        restarted (or reset) and what Terraform built is gone; asking Terraform would only say so slowly."""
        if self._target() != "local" or env_name not in self._stale:
            return False
        from stageflow.local.bootstrap import STATE_BUCKET

        try:
            self._client("s3").head_bucket(Bucket=STATE_BUCKET)
        except ClientError as exc:
            status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            if status in (403, 404) or (exc.response.get("Error") or {}).get("Code") in (
                "404",
                "NoSuchBucket",
            ):
                return True
            from stageflow.aws import aws_error

            raise aws_error(exc, "checking the emulator's Terraform state") from None
        return False
