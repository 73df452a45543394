"""Terraform versions and the flags each one has (terraform-exec's ``compatible`` idea).

The S3 backend's settings differ between 1.0 (``endpoint``, ``force_path_style``) and >= 1.6
(``endpoints = {...}``, ``use_path_style``); a flag the installed Terraform lacks is a clear error
before anything runs, not a strange failure halfway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from stageflow.errors import EnvironmentFailure

MINIMUM = (1, 0, 0)
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


class UnsupportedFlagError(EnvironmentFailure):
    """The installed Terraform is too old for an option we were asked to pass."""


@dataclass(frozen=True, order=True)
class TerraformVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> TerraformVersion:
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise EnvironmentFailure(
                f"cannot parse Terraform version {text!r}", "is TERRAFORM_BIN terraform?"
            )
        return cls(int(m[1]), int(m[2]), int(m[3]))

    @classmethod
    def from_version_json(cls, stdout: str) -> TerraformVersion:
        try:
            data = json.loads(stdout)
            return cls.parse(data["terraform_version"])
        except (ValueError, KeyError, TypeError):
            raise EnvironmentFailure(
                "`terraform version -json` gave no version", "is TERRAFORM_BIN terraform >= 1.0?"
            ) from None

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    # -- per-version features ----------------------------------------------------------------------
    @property
    def s3_endpoints_block(self) -> bool:
        """S3 backend: ``endpoints = {s3 = ...}`` and ``use_path_style`` (>= 1.6) vs flat keys (1.0-1.5)."""
        return self.at_least(1, 6)

    @property
    def workspace_select_or_create(self) -> bool:
        """``workspace select -or-create`` exists from 1.4 (we do not rely on it: 1.0 lacks it)."""
        return self.at_least(1, 4)

    @property
    def init_json(self) -> bool:
        return self.at_least(1, 9)

    def require(self, feature: bool, flag: str, since: str) -> None:
        if not feature:
            raise UnsupportedFlagError(
                f"Terraform {self} does not support {flag}",
                f"it needs Terraform >= {since}; set TERRAFORM_BIN to a newer binary",
            )

    def check_supported(self) -> None:
        if (self.major, self.minor, self.patch) < MINIMUM:
            raise EnvironmentFailure(
                f"Terraform {self} is too old", "stageflow needs Terraform >= 1.0 (make setup installs 1.0.3)"
            )


V1_0 = TerraformVersion(1, 0, 3)
