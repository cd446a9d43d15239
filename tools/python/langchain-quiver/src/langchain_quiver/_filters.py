"""LangChain (Chroma-style) metadata filters -> quiver_client filters.

::

    FILTER := { KEY: ..., ... }                every entry must hold (AND); {} is no filter
    KEY    := "$and": [FILTER, ...]            all hold
            | "$or":  [FILTER, ...]            at least one holds
            | "$not": FILTER                   does not hold
            | FIELD: VALUE                     FIELD == VALUE (str, int, float, bool)
            | FIELD: {OP: ARG, ...}            every OP holds
    OP     := "$eq" | "$ne"                    ARG: a value
            | "$gt" | "$gte" | "$lt" | "$lte"  ARG: a number
            | "$in" | "$nin"                   ARG: a non-empty list of values
            | "$between"                       ARG: [low, high], both included

Quiver's semantics: a point lacking FIELD fails every condition on it and so passes ``$ne`` / ``$nin`` / ``$not``;
numbers compare as numbers (``{"page": 3}`` matches 3 and 3.0); a string matches a string or any element of a list
of strings (``{"tags": "a"}`` matches ``tags=["a", "b"]``); booleans match booleans only. A ``quiver_client``
``Filter`` (``F.eq(...) & ...``) is accepted as it is.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from quiver_client import F, Filter

_RANGE = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


def to_quiver_filter(flt: Any) -> Optional[Any]:
    """The quiver_client filter for a LangChain filter dict (None: no filter)."""
    if flt is None or isinstance(flt, Filter):
        return flt
    if not isinstance(flt, Mapping):
        if hasattr(flt, "SerializeToString"):  # a quiver.v1.Filter message
            return flt
        raise ValueError(f"filter must be a dict or a quiver_client Filter, not {type(flt).__name__}")
    return _parse(flt, "filter")


def _parse(d: Any, where: str) -> Optional[Filter]:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a dict, got {d!r}")
    parts: list[Filter] = []
    for key, arg in d.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys are metadata names or $and / $or / $not, not {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(arg, (list, tuple)) or not arg:
                raise ValueError(f"{where}: {key} takes a non-empty list of filters, not {arg!r}")
            subs = [_parse(x, f"{where}.{key}[{i}]") for i, x in enumerate(arg)]
            subs_ = [s for s in subs if s is not None]
            if len(subs_) != len(subs):
                raise ValueError(f"{where}: {key} holds an empty filter {{}}")
            parts.append(F.all(*subs_) if key == "$and" else F.any(*subs_))
        elif key == "$not":
            sub = _parse(arg, f"{where}.$not")
            if sub is None:
                raise ValueError(f"{where}: $not of an empty filter {{}} would match nothing")
            parts.append(~sub)
        elif key.startswith("$"):
            raise ValueError(f"{where}: unknown operator {key!r} (top-level operators: $and, $or, $not)")
        elif isinstance(arg, Mapping):
            parts.append(_field_ops(key, arg, f"{where}.{key}"))
        else:
            parts.append(_eq(key, arg, where))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else F.all(*parts)


def _eq(field: str, value: Any, where: str) -> Filter:
    if value is None:
        raise ValueError(f"{where}: metadata '{field}' compared with None (None values are not filterable)")
    if isinstance(value, (list, tuple, set)):
        raise ValueError(f"{where}: metadata '{field}' compared with a list; use {{'{field}': {{'$in': [...]}}}}")
    return F.eq(field, value)


def _field_ops(field: str, ops: Mapping[str, Any], where: str) -> Filter:
    if not ops:
        raise ValueError(f"{where}: an empty operator dict")
    parts: list[Filter] = []
    bounds: dict[str, Any] = {}
    for op, arg in ops.items():
        if op == "$eq":
            parts.append(_eq(field, arg, where))
        elif op == "$ne":
            parts.append(~_eq(field, arg, where))
        elif op in _RANGE:
            if op in ("$gt", "$gte") and ("gt" in bounds or "gte" in bounds) or \
                    op in ("$lt", "$lte") and ("lt" in bounds or "lte" in bounds):
                raise ValueError(f"{where}: more than one lower or upper bound")
            bounds[_RANGE[op]] = arg
        elif op == "$between":
            if not isinstance(arg, (list, tuple)) or len(arg) != 2:
                raise ValueError(f"{where}: $between takes [low, high], not {arg!r}")
            parts.append(F.between(field, arg[0], arg[1]))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, (list, tuple, set)) or not arg:
                raise ValueError(f"{where}: {op} takes a non-empty list of values, not {arg!r}")
            f = F.any_of(field, list(arg))
            parts.append(f if op == "$in" else ~f)
        else:
            raise ValueError(f"{where}: unknown operator {op!r} "
                             "(operators: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $between)")
    if bounds:
        parts.append(F.range(field, **bounds))
    return parts[0] if len(parts) == 1 else F.all(*parts)
