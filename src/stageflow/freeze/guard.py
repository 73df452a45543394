"""The check ``deploy`` and ``canary`` run before anything else: refuse during a freeze, or go ahead on
``--emergency --reason TEXT`` with the override recorded in the history and notified."""

from __future__ import annotations

from datetime import datetime

from stageflow.errors import UsageError
from stageflow.freeze.model import Freeze, FrozenError, active, emergency_text
from stageflow.ports import DeploymentHistory, Message, Notifier


def check_freeze(
    env,
    history: DeploymentHistory | None,
    now: datetime,
    *,
    emergency: str | None,
    who: str,
    service: str,
    notifier: Notifier | None = None,
) -> Freeze | None:
    """``env`` is the environment's settings (its ``freeze`` windows); ``history`` ``None`` when the
    environment has never been built (no freeze can have been set). ``emergency``: the ``--reason`` of
    ``--emergency``. Returns the freeze that was overridden, or ``None`` when none is in force."""
    if emergency is not None and not emergency.strip():
        raise UsageError("--emergency needs --reason TEXT (recorded and notified)")
    frozen = active(env.name, env.freeze, history.freeze_item() if history else None, now)
    if frozen is None:
        return None
    if emergency is None:
        raise FrozenError(frozen)
    text = emergency_text(frozen, who, emergency.strip())
    data = {"who": who, "reason": emergency.strip(), "freeze": frozen.to_json()}
    if history is not None:
        history.record_event("freeze_override", now, data)
    if notifier is not None:
        notifier.send(Message("freeze_override", env.name, service, "-", text, data))
    return frozen
