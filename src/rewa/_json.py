"""Standard JSON out: no ``NaN`` / ``Infinity``, which ``json.dumps`` writes by default and
standard JSON readers refuse.

A non-finite float is written as ``null``, and the dict that holds it (the innermost one)
says why in the field ``"non_finite_as_null"``: the key (or ``key/index`` path below it) of
each such value, with what it was (``"nan"``, ``"inf"``, ``"-inf"``).
"""

from __future__ import annotations

import json
import math

__all__ = ["NOTE_KEY", "dumps", "finite"]

NOTE_KEY = "non_finite_as_null"


def _name(value: float) -> str:
    return "nan" if value != value else ("inf" if value > 0 else "-inf")


def _clean(obj) -> tuple[object, dict[str, str]]:
    """``obj`` with non-finite floats as ``None``, and the paths of those not yet noted in a dict."""
    if isinstance(obj, float):
        return (obj, {}) if math.isfinite(obj) else (None, {"": _name(obj)})
    if isinstance(obj, dict):
        out, notes = {}, {}
        for key, value in obj.items():
            out[key], inner = _clean(value)
            notes.update({f"{key}/{path}" if path else str(key): what for path, what in inner.items()})
        if notes:
            earlier = out.get(NOTE_KEY)
            out[NOTE_KEY] = {**earlier, **notes} if isinstance(earlier, dict) else notes
        return out, {}
    if isinstance(obj, (list, tuple)):
        items, notes = [], {}
        for index, value in enumerate(obj):
            clean, inner = _clean(value)
            items.append(clean)
            notes.update({f"{index}/{path}" if path else str(index): what for path, what in inner.items()})
        return items, notes
    return obj, {}


def finite(obj):
    """``obj`` (dicts, lists, tuples, numbers, strings) with every nan or inf float written as
    ``None`` and noted in the enclosing dict's ``"non_finite_as_null"`` field."""
    return _clean(obj)[0]


def dumps(obj, **kwargs) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)``: standard JSON whatever the numbers."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
