"""``[service] smoke = { event = "path/to/event.json", expect = { … } }``: the function's smoke contract
(:class:`stageflow.invokecheck.Smoke`), the pre-traffic check and the ``smoke`` stage both use it.

Checked at load: the event file exists under the repository root and holds JSON; ``expect`` is a table
(nested tables compare key by key). Anything else is a ConfigError naming the key (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stageflow.invokecheck import Smoke

SMOKE_KEYS = {"event", "expect"}


def parse_smoke(r, raw: Any, key: str, root: Path) -> Smoke:
    """``raw`` (the ``smoke`` value, or None when absent) → :class:`Smoke`; ``r`` is the reader of
    :mod:`stageflow.config.parse` (its ``fail``/``table``/``check_keys``/``get``)."""
    if raw is None:
        return Smoke()
    table = r.table(raw, key)
    r.check_keys(table, key, SMOKE_KEYS)
    event = r.get(table, key, "event", str, None)
    if event is not None:
        path = root / event
        if not path.is_file():
            raise r.fail(f"{key}.event", f"{event}: no such file (paths are relative to {root})")
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise r.fail(f"{key}.event", f"{event}: not a JSON file ({exc})") from None
    expect = r.table(table.get("expect", {}), f"{key}.expect")
    return Smoke(event_path=event, expect=expect)
