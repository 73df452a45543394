"""Where the deployed service answers, for the integration suite and the load run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


class Endpoint(Protocol):
    """The deployed service as the composition root finds it (``services.ServiceEndpoint``)."""

    url: str | None
    lambda_client: Any
    function: str | None
    alias: str | None


# Opens the environment's endpoint for a block: the front door's URL (the emulator's loopback front door
# in local mode, API Gateway's stage or tests.url on AWS) and the function and alias from the outputs.
OpenEndpoint = Callable[[], AbstractContextManager[Endpoint]]


@dataclass(frozen=True)
class ServiceTarget:
    """Where the deployed service answers: an HTTP base URL, a Lambda function and alias, or both."""

    url: str | None = None
    function: str | None = None
    alias: str | None = None
    region: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.url or f"lambda:{self.function}:{self.alias}"

    def env(self) -> dict[str, str]:
        out = dict(self.extra_env)
        if self.url:
            out["SERVICE_URL"] = self.url
        if self.function:
            out["SERVICE_FUNCTION"] = self.function
            out["SERVICE_ALIAS"] = self.alias or "live"
        if self.region:
            out.setdefault("AWS_REGION", self.region)
            out.setdefault("AWS_DEFAULT_REGION", self.region)
        return out


@contextlib.contextmanager
def service_target(
    open_endpoint: OpenEndpoint, *, tests_url: str | None, region: str, url: str | None = None
) -> Iterator[ServiceTarget]:
    """``url`` when given; else the environment's endpoint: the front door's URL (``tests_url``, the
    environment's ``tests.url``, when the endpoint has none) and the function and alias behind it."""
    if url:
        yield ServiceTarget(url=url)
        return
    with open_endpoint() as ep:
        yield ServiceTarget(
            url=ep.url or tests_url,
            function=ep.function,
            alias=ep.alias,
            region=region,
        )
