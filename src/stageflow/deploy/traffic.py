"""Moving alias traffic: the canary weight through RoutingConfig, promote, restore."""

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


class AliasTraffic:
    def __init__(self, lambda_client, function: str, alias: str):
        self.lam = lambda_client
        self.function = function
        self.alias = alias

    def _call(self, fn, **kwargs):
        return lambda_call(f"lambda {self.function}:{self.alias}", fn, **kwargs)

    def state(self) -> AliasState:
        a = self._call(self.lam.get_alias, FunctionName=self.function, Name=self.alias)
        extra = (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasState(a["FunctionVersion"], {k: float(v) for k, v in extra.items()})

    def set_canary(self, stable: str, canary: str, weight: int) -> AliasState:
        if weight >= 100:
            return self.restore(canary)
        routing = (
            {"AdditionalVersionWeights": {canary: round(weight / 100, 4)}}
            if weight > 0
            else {"AdditionalVersionWeights": {}}
        )
        self._call(
            self.lam.update_alias,
            FunctionName=self.function,
            Name=self.alias,
            FunctionVersion=stable,
            RoutingConfig=routing,
        )
        return self.state()

    def restore(self, version: str) -> AliasState:
        """All traffic to ``version``, routing weights cleared."""
        self._call(
            self.lam.update_alias,
            FunctionName=self.function,
            Name=self.alias,
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        return self.state()

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
