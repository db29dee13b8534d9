"""``field=value`` from a command line, parsed one way for ``srm-bench submit --override`` and
``python -m workers --set``: the value is JSON (``1e-3``, ``true``, ``[0.5, 0.75]``, ``null``),
else the bare word as a string (``augment=crop``)."""
from __future__ import annotations

import json
from typing import Any


def parse_override(text: str, flag: str = "--set") -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{flag} takes field=value, e.g. epochs=2; got {text!r}")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw
