"""LangChain metadata <-> Quiver attributes.

A metadata entry is stored as a typed Quiver attribute when Quiver can hold it exactly:

=================================  ===========================================
Python value                       Quiver attribute (filterable)
=================================  ===========================================
``bool``                           BOOL
``int`` (in the int64 range)       INT64
``float`` (finite)                 DOUBLE
``str`` (no NUL character)         KEYWORD
``list`` / ``tuple`` of ``str``    KEYWORDS (comes back as a ``list``)
=================================  ===========================================

under a key of 1..64 UTF-8 bytes without NUL. Every other entry (``None``, a dict, a list holding non-strings, an
int beyond int64, NaN or infinity, a string with a NUL character, a key of 0 or more than 64 bytes) is JSON-encoded,
all of them together, into the one reserved attribute ``_lc_json`` and decoded back on the way out, so it
round-trips as JSON does (tuples come back as lists) but cannot be filtered on. A value JSON cannot encode (a
``datetime``, a set, an object) raises ``ValueError`` naming the key before anything is sent.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Optional

import numpy as np

#: The reserved attribute holding the metadata entries that are not stored as typed attributes (a JSON object).
EXTRA_KEY = "_lc_json"

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_NAME_MAX = 64
_KEYWORDS_MAX = 4096


def _key_ok(key: str) -> bool:
    if key == EXTRA_KEY or "\x00" in key:
        return False
    return 1 <= len(key.encode("utf-8", "surrogatepass")) <= _NAME_MAX


def _native(value: Any) -> tuple[bool, Any]:
    """(True, the value as the client sends it) when Quiver stores it exactly, else (False, None)."""
    if isinstance(value, (bool, np.bool_)):
        return True, bool(value)
    if isinstance(value, (int, np.integer)):
        i = int(value)
        return (True, i) if _INT64_MIN <= i <= _INT64_MAX else (False, None)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return (True, x) if math.isfinite(x) else (False, None)
    if isinstance(value, str):
        return ("\x00" not in value), value
    if isinstance(value, (list, tuple)):
        if len(value) <= _KEYWORDS_MAX and all(isinstance(v, str) and "\x00" not in v for v in value):
            return True, list(value)
    return False, None


def encode_metadata(metadata: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The attributes of a point for this metadata (see the module docstring)."""
    if not metadata:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, not {type(metadata).__name__}")
    attrs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"metadata keys must be str, not {key!r}")
        ok, v = _native(value)
        if ok and _key_ok(key):
            attrs[key] = v
        else:
            extra[key] = value
    if extra:
        try:
            attrs[EXTRA_KEY] = json.dumps(extra, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
        except (TypeError, ValueError) as e:
            bad = next((k for k, v in extra.items() if not _json_ok(v)), "?")
            raise ValueError(f"metadata key {bad!r}: the value {extra.get(bad)!r} can be stored neither as a Quiver "
                             "attribute (int, float, str, bool, list of str) nor as JSON") from e
    return attrs


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return False
    return True


def decode_metadata(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a point's attributes stand for (the reverse of ``encode_metadata``)."""
    meta = dict(attributes)
    raw = meta.pop(EXTRA_KEY, None)
    if isinstance(raw, str):
        try:
            extra = json.loads(raw)
        except ValueError:
            extra = None
        if isinstance(extra, dict):
            meta.update(extra)
        else:  # not written by this package: leave it as it is
            meta[EXTRA_KEY] = raw
    return meta
