"""What a deployment's record holds, as frozen types: its canary state, every transition, the gate
verdicts, and the rollback events recorded outside a deploy.

Plain data (standard library only: the rollback function's zip carries this module). ``to_json`` /
``from_json`` give the plain JSON form (``--json`` output, the record's attributes); only the history
adapter (:mod:`stageflow.history`) turns records into DynamoDB items and back.

``get(key)`` reads a record by its JSON key, for readers that still take records as mappings (report,
dora, rehearse); new code reads the attributes.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from stageflow.isotime import id_stamp

Phase = Literal[
    "pending",
    "shifting",
    "baking",
    "awaiting_approval",
    "monitoring",
    "rolling_back",
    "rolled_back",
    "succeeded",
    "failed",
]
TERMINAL = ("rolled_back", "succeeded", "failed")
Status = Literal["in_progress", "awaiting_approval", "succeeded", "rolled_back", "failed"]
STATUSES = ("in_progress", "awaiting_approval", "succeeded", "rolled_back", "failed")
ACTIVE = ("in_progress", "awaiting_approval")


class _JsonKeys:
    """``get``/``[]`` by JSON key (see the module docstring)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]


def _known(cls, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class State(_JsonKeys):
    """The canary machine's state (:mod:`stageflow.deploy.machine`), as recorded."""

    phase: Phase = "pending"
    step: int = -1  # index into policy.steps of the current (or last) step; -1 before the first
    weight: int = 0  # percent of alias traffic on the new version
    window_start: str | None = None  # when the current bake/monitoring window began (iso)
    window_end: str | None = None  # when it ends (iso), extensions included
    canary_start: str | None = None  # when the canary first took traffic (iso); None in older records
    extensions: int = 0
    approval_for: str | None = None  # "before_canary" | "step:<i>" | "inconclusive:<i>"
    reason: str = ""
    errors: int = 0  # consecutive looks whose metric read failed (reset by a good look)
    fault: str = ""  # an AWS failure that ended the canary (a failed alias shift): exit 3, not 4
    approved_here: bool = False  # people approved at this step (an --extend bake then goes on unpaused)
    deadline: str | None = None  # awaiting_approval: when the pause ends by itself (iso)
    # awaiting_approval: the approvals given at this pause so far, each {"who", "roles", "option",
    # "minutes", "at", "reason"}; the pause goes on when they meet the environment's rule
    answers: tuple[Mapping[str, Any], ...] = ()

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    def rolled_back(self, reason: str) -> State:
        """This state ended by a rollback from outside the canary (on-call, an alarm)."""
        return State(phase="rolled_back", step=self.step, weight=0, reason=reason)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["answers"] = [dict(a) for a in self.answers]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> State:
        values = _known(cls, data or {})
        values["answers"] = tuple(_plain_answer(a) for a in values.get("answers") or ())
        return cls(**values)


def _plain_answer(a: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    out["roles"] = list(out.get("roles") or ())
    return out


@dataclass(frozen=True)
class Transition(_JsonKeys):
    """One recorded change of a deployment's phase (JSON keys ``from`` and ``to``)."""

    at: str
    from_phase: str
    to_phase: str
    reason: str = ""
    step: int | None = None
    weight: int | None = None

    @classmethod
    def of(cls, at: str, old: State, new: State, reason: str = "") -> Transition:
        """The transition of the canary machine from ``old`` to ``new``."""
        return cls(at, old.phase, new.phase, reason or new.reason, step=new.step, weight=new.weight)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": self.at, "from": self.from_phase, "to": self.to_phase}
        out.update({k: v for k, v in (("step", self.step), ("weight", self.weight)) if v is not None})
        out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transition:
        return cls(
            at=str(data.get("at") or ""),
            from_phase=str(data.get("from") or ""),
            to_phase=str(data.get("to") or ""),
            reason=str(data.get("reason") or ""),
            step=data.get("step"),
            weight=data.get("weight"),
        )


@dataclass(frozen=True)
class VerdictRecord(_JsonKeys):
    """One look at the gates during a bake or the monitoring window, with the numbers the judge read."""

    at: str
    decision: str
    phase: str = ""
    step: int = -1
    weight: int = 0
    window_start: str | None = None
    canary_start: str | None = None
    source: str = ""
    reasons: tuple[str, ...] = ()
    results: tuple[Mapping[str, Any], ...] = ()
    minutes: Mapping[str, Any] | None = None  # per-minute numbers new since the previous look

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["results"] = [dict(r) for r in self.results]
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerdictRecord:
        values = _known(cls, data)
        values["reasons"] = tuple(values.get("reasons") or ())
        values["results"] = tuple(values.get("results") or ())
        return cls(**values)


@dataclass(frozen=True)
class RollbackEvent(_JsonKeys):
    """A rollback recorded outside a deploy (``stageflow rollback``, an alarm)."""

    at: str
    trigger: str
    reason: str
    who: str
    to_version: str
    from_weights: Mapping[str, int]
    deployment_id: str = ""
    kind: str = "rollback"
    # several functions: {key: {"to_version", "from_weights"}} (to_version/from_weights: the first's)
    functions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["from_weights"] = dict(self.from_weights)
        if not self.functions:
            del out["functions"]
        return out


@dataclass(frozen=True)
class Deployment(_JsonKeys):
    """One deployment's record. Changed only through ``DeploymentHistory.update``, which returns the
    new record (``seq`` counts the writes)."""

    deployment_id: str
    environment: str
    service: str
    version: str | None
    previous_version: str | None
    status: str
    phase: str
    started_at: str
    who: str
    commit: str | None = None
    artifact_digest: str | None = None
    plan_hash: str | None = None
    ended_at: str | None = None
    state: State = field(default_factory=State)
    transitions: tuple[Transition, ...] = ()
    verdicts: tuple[VerdictRecord, ...] = ()  # the newest few; the history's verdict reads have all
    verdict_count: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0
    # every function of the release: {key: {"function", "alias", "from_version", "to_version"}}
    # (deploy/release.py); empty in records written before several functions existed
    functions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(
            state=self.state.to_json(),
            transitions=[t.to_json() for t in self.transitions],
            verdicts=[v.to_json() for v in self.verdicts],
            extra=dict(self.extra),
            functions={k: dict(v) for k, v in self.functions.items()},
        )
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deployment:
        values = _known(cls, data)
        for name in ("previous_version", "version"):  # None values are not stored
            values.setdefault(name, None)
        values["state"] = State.from_json(values.get("state"))
        values["transitions"] = tuple(Transition.from_json(t) for t in values.get("transitions") or ())
        values["verdicts"] = tuple(VerdictRecord.from_json(v) for v in values.get("verdicts") or ())
        values["extra"] = dict(values.get("extra") or {})
        values["functions"] = {str(k): dict(v) for k, v in (values.get("functions") or {}).items()}
        return cls(**values)

    def with_changes(
        self,
        *,
        transition: Transition | None = None,
        verdict: VerdictRecord | None = None,
        keep_verdicts: int = 1,
        **changes: Any,
    ) -> Deployment:
        """The record after one write: ``changes`` set, ``transition`` appended, ``verdict`` counted
        (the newest ``keep_verdicts`` kept), ``seq`` advanced."""
        new = replace(self, **changes, seq=self.seq + 1)
        if transition is not None:
            new = replace(new, transitions=(*new.transitions, transition))
        if verdict is not None:
            kept = (*new.verdicts, verdict)[-keep_verdicts:]
            new = replace(new, verdicts=kept, verdict_count=new.verdict_count + 1)
        return new


def check_line(result: Mapping[str, Any] | None) -> str | None:
    """A recorded function check (``extra.pre_traffic``, ``extra.smoke``) as one line for people:
    ``sample-api-dev:3 failed: Runtime.ImportModuleError: …``; None when there is none."""
    if not isinstance(result, Mapping) or "status" not in result:
        return None
    where = f"{result.get('function')}:{result.get('qualifier')}"
    status, reason = result.get("status"), result.get("reason") or ""
    if status == "not run":
        return f"{where} not run here" + (f" ({reason})" if reason else "")
    return f"{where} {status}" + (f": {reason}" if reason else "")


def deadline_reason(state: State) -> str:
    """What a pause's deadline did, in words: before the canary the release is rejected, at a canary
    step it is rolled back."""
    if state.approval_for == "before_canary":
        return f"no approval before the deadline ({state.deadline}): rejected"
    return f"no approval before the deadline ({state.deadline}): rolled back"


def status_for(phase: str) -> str:
    """A deployment's status from its canary phase."""
    return phase if phase in ("awaiting_approval", "succeeded", "rolled_back", "failed") else "in_progress"


def new_deployment_id(now: datetime) -> str:
    """Deployment ids sort by time: ``20261122T015900Z-1a2b3c``."""
    return f"{id_stamp(now)}-{secrets.token_hex(3)}"
