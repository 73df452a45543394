"""Deploy freezes: windows from ``stageflow.toml`` (``[environments.NAME.freeze]``) and freezes set by a
person (``stageflow freeze ENV --until TIME --reason TEXT``, kept in the environment's history table).

``deploy`` and ``canary`` refuse while one is active (exit 2, one line naming it) unless
``--emergency --reason TEXT`` (recorded and notified); ``rollback`` is never frozen. Plain data and
pure functions here: :mod:`stageflow.freeze.windows` reads the configuration, :func:`active` decides.
"""

from __future__ import annotations

from stageflow.freeze.model import (
    Freeze,
    FreezeWindow,
    FrozenError,
    active,
    emergency_text,
    parse_until,
)

__all__ = ["Freeze", "FreezeWindow", "FrozenError", "active", "emergency_text", "parse_until"]
