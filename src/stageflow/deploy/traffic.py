"""Moving alias traffic: the canary weight through RoutingConfig, promote, restore.

Every UpdateAlias carries the RevisionId of the alias state it was computed from (issue 24 item 6): the
revision this object last read or wrote, or — when it has none yet — one read just before. When the
alias changed meanwhile (a rollback, another run) Lambda answers PreconditionFailedException and
:class:`AliasChanged` says "changed by another run", with the alias as it is now; nothing moved.
"""

from __future__ import annotations

from stageflow.errors import EnvironmentFailure, UsageError
from stageflow.ports import AliasState  # noqa: F401 - defined with the ports, used here


def lambda_call(what: str, fn, **kwargs):
    """One Lambda API call; a ClientError becomes one line (``what: Code: Message``, exit 3)."""
    from botocore.exceptions import ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise EnvironmentFailure(f"{what}: {err.get('Code')}: {err.get('Message')}") from None


class AliasChanged(EnvironmentFailure):
    """UpdateAlias refused: the alias is no longer the state the update was computed from."""

    def __init__(self, function: str, alias: str, now: AliasState | None):
        seen = f"; it now serves {now.weights}" if now is not None else ""
        super().__init__(
            f"lambda {function}:{alias}: the alias was changed by another run{seen}; nothing moved",
            "stageflow status ENV shows what happened",
        )
        self.now = now


class AliasTraffic:
    def __init__(self, lambda_client, function: str, alias: str):
        self.lam = lambda_client
        self.function = function
        self.alias = alias
        self.revision: str | None = None  # the RevisionId of the last state read or written

    def _call(self, fn, **kwargs):
        return lambda_call(f"lambda {self.function}:{self.alias}", fn, **kwargs)

    def _seen(self, a: dict) -> AliasState:
        extra = (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        self.revision = a.get("RevisionId") or None
        return AliasState(a["FunctionVersion"], {k: float(v) for k, v in extra.items()}, self.revision)

    def state(self) -> AliasState:
        return self._seen(self._call(self.lam.get_alias, FunctionName=self.function, Name=self.alias))

    def _update(self, version: str, routing: dict) -> AliasState:
        """UpdateAlias guarded by the revision it was computed from; :class:`AliasChanged` if stale."""
        from botocore.exceptions import ClientError

        if self.revision is None:
            self.state()
        kwargs = {"RevisionId": self.revision} if self.revision else {}
        try:
            answer = self.lam.update_alias(
                FunctionName=self.function,
                Name=self.alias,
                FunctionVersion=version,
                RoutingConfig=routing,
                **kwargs,
            )
        except ClientError as exc:
            err = exc.response.get("Error", {})
            if err.get("Code") == "PreconditionFailedException":
                self.revision = None
                try:
                    now = self.state()
                except EnvironmentFailure:
                    now = None
                raise AliasChanged(self.function, self.alias, now) from None
            raise EnvironmentFailure(
                f"lambda {self.function}:{self.alias}: {err.get('Code')}: {err.get('Message')}"
            ) from None
        if isinstance(answer, dict) and answer.get("RevisionId") and answer.get("FunctionVersion"):
            return self._seen(answer)  # what this update made, with its revision (no re-read to adopt)
        return self.state()

    def set_canary(self, stable: str, canary: str, weight: int) -> AliasState:
        if weight >= 100:
            return self.restore(canary)
        routing = (
            {"AdditionalVersionWeights": {canary: round(weight / 100, 4)}}
            if weight > 0
            else {"AdditionalVersionWeights": {}}
        )
        return self._update(stable, routing)

    def restore(self, version: str) -> AliasState:
        """All traffic to ``version``, routing weights cleared."""
        return self._update(version, {"AdditionalVersionWeights": {}})

    def version_exists(self, version: str) -> bool:
        from botocore.exceptions import ClientError

        if not version.isdigit():
            return False
        try:
            self.lam.get_function_configuration(FunctionName=self.function, Qualifier=version)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise EnvironmentFailure(f"lambda {self.function}: {exc}") from None

    def require_version(self, version: str) -> None:
        if not self.version_exists(version):
            raise UsageError(
                f"version {version!r} of {self.function} does not exist",
                "list versions: aws lambda list-versions-by-function",
            )

    def code_sha256(self, version: str) -> str:
        cfg = self._call(self.lam.get_function_configuration, FunctionName=self.function, Qualifier=version)
        return cfg["CodeSha256"]
