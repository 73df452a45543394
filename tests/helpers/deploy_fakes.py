"""Fakes of the services the deploy chain uses (:class:`stageflow.services.DeployServices`): each records
what it was asked, in order, into one shared list; nothing runs a process or talks to AWS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from stageflow.config import load
from stageflow.outputs import DeployOutputs
from stageflow.report import Reporter
from stageflow.services import DeployServices, ImageBuilder, ServiceChecks
from stageflow.terraform.api import TerraformService

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = DeployOutputs("fn", "live", ("a",), "arn:aws:sns:us-east-1:1:t", "tbl")


class RecordingReporter(Reporter):
    """Quiet; keeps the stage lines (``stage NAME: ...``) in order."""

    def __init__(self):
        super().__init__(quiet=True)
        self.stages: list[str] = []
        self.results: list[tuple[str, Any]] = []

    def info(self, phase: str, subject: str, message: str) -> None:
        if phase == "stage":
            self.stages.append(subject)

    def result(self, human: str, data: Any = None) -> None:
        self.results.append((human, data))


@dataclass
class Done:
    """A stage result (``summary``, ``to_json``) of a service check."""

    name: str
    paused: bool = False

    @property
    def summary(self) -> str:
        return self.name

    def to_json(self) -> dict:
        return {}


@dataclass
class FakeSummary:
    def headline(self):
        return "2 to create"


@dataclass
class FakePlan:
    plan_file: Path
    plan_sha256: str = "abc123"
    summary: FakeSummary = field(default_factory=FakeSummary)
    env_name: str = "staging"
    root: Path | None = None
    planned_outputs: dict | None = None  # a plan with changes: outputs come from `terraform output`
    policy: Any = field(default_factory=lambda: SimpleNamespace(allowed=True, reason="ok"))


@dataclass
class FakeApplied:
    applied: bool = True


class FakeTerraform:
    """The Terraform service: ``plan`` returns ``planned``, ``apply`` ``applied``, ``outputs`` ``outputs``
    (or fails the test when ``outputs`` is None); each call is recorded in ``calls``. ``outputs_after``
    is the real one: it reads a plan without changes itself and asks ``outputs`` otherwise."""

    outputs_after = TerraformService.outputs_after

    def __init__(self, calls: list, planned: FakePlan, applied: FakeApplied | None = None, outputs=OUTPUTS):
        self.calls, self.planned, self.applied, self.out = calls, planned, applied or FakeApplied(), outputs

    def plan(self, env_name, *, extra_env=None, allow_destroy=False):
        self.calls.append(("plan", env_name, extra_env))
        return self.planned

    def apply(self, plan, *, extra_env=None):
        self.calls.append(("apply", plan.plan_file, extra_env))
        return self.applied

    def inputs_digest(self, env_name, *, root=None):
        return f"inputs-of-{env_name}"

    def outputs(self, env_name, **_):
        if self.out is None:
            raise AssertionError("terraform output must not run after a plan without changes")
        self.calls.append(("outputs", env_name))
        return self.out


class FakeOutputsStore:
    def __init__(self, remembered: DeployOutputs | None = None):
        self.remembered: dict[str, DeployOutputs] = {}
        self.cached = remembered

    def get(self, env_name, *, cached_only=False):
        return self.cached

    def remember(self, env_name, out):
        self.remembered[env_name] = out


class FakeSecretStore:
    def __init__(self, values: dict | None = None):
        self.values = values or {}
        self.resolved: list[str] = []
        self.updated: list[tuple[str, tuple[str, ...]]] = []
        self.plain: dict[str, str] = {}
        self.live: dict = {}  # GetFunctionConfiguration's answer

    def resolve(self, env_name):
        self.resolved.append(env_name)
        return dict(self.values)

    def resolve_pinned(self, env_name):
        self.resolved.append(env_name)
        pins = {
            n: f"secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:{n}-x?versionId=v1"
            for n in self.values
        }
        return dict(self.values), pins

    def update_lambda_env(self, function_name, values, *, plain=None, only=None):
        self.updated.append((function_name, tuple(sorted(values))))
        self.plain = dict(plain or {})
        return SimpleNamespace(kept=(), removed=())

    def function_environment(self, function_name):
        return {}

    def function_configuration(self, function_name):
        return dict(self.live)


def services(
    *,
    config_path: Path = REPO / "stageflow.toml",
    terraform: Any = None,
    outputs: Any = None,
    secrets: Any = None,
    order: list[str] | None = None,
    fail: dict[str, Exception] | None = None,
    reporter: Reporter | None = None,
    freeze_check: Any = None,
) -> DeployServices:
    """Every service a fake; ``order`` gets each service's name as it is used; ``fail`` maps a name
    (lint, unit, build, security, image, smoke, integration, load, canary) to what it raises;
    ``freeze_check`` the freeze guard (default: never frozen)."""
    order = [] if order is None else order
    fail = fail or {}
    cfg = load(config_path)

    def step(name, result=None):
        def call(*_a, **_k):
            order.append(name)
            if name in fail:
                raise fail[name]
            return result if result is not None else Done(name)

        return call

    packages = SimpleNamespace(
        service=SimpleNamespace(digest="sha256:" + "0" * 64, files=1, data=b"x"),
        rollback=SimpleNamespace(digest="sha256:" + "1" * 64),
        dependencies=0,
        checked="fits python3.11 on x86_64",
        to_json=dict,
    )
    nothing_to_deploy = SimpleNamespace(
        outcome=None, published=SimpleNamespace(reason="same code", previous_version="3")
    )
    image = SimpleNamespace(
        images=[SimpleNamespace(target="runtime", tags=("v1",), repo_digests=("r@sha256:2",))],
        digest="sha256:" + "2" * 64,
        revision="r",
        version="1",
        reused=False,
        to_json=dict,
    )
    report = SimpleNamespace(record=lambda: {"scanners": {}}, raise_for_status=lambda: None)
    return DeployServices(
        config=cfg,
        reporter=reporter or RecordingReporter(),
        env=cfg.env,
        freeze_check=freeze_check or (lambda env_name, emergency: None),
        package=step("build", packages),
        security_gate=step("security", report),
        images=ImageBuilder(engine=lambda: "engine", build=step("image", image)),
        terraform=terraform or FakeTerraform([], FakePlan(Path("/nonexistent/p.tfplan"))),
        outputs=outputs or FakeOutputsStore(),
        secrets=secrets or FakeSecretStore(),
        environment=lambda env_name, outputs=None: SimpleNamespace(env=cfg.env(env_name), outputs=outputs),
        start_canary=step("canary", nothing_to_deploy),
        checks=ServiceChecks(
            lint=step("lint"),
            unit=step("unit"),
            smoke=step("smoke"),
            integration=step("integration"),
            load=step("load"),
        ),
        describe_target=lambda env_name: ("", []),
    )
