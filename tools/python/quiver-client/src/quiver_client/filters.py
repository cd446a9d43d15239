"""Filters on attributes: a builder (``F``) and a plain-dict form, both turned into the server's ``Filter`` message.

Builder::

    from quiver_client import F
    f = F.eq("lang", "en") & F.range("year", gte=2020) | ~F.any_of("tag", ["a", "b"])

``&`` is AND, ``|`` is OR, ``~`` is NOT (Python's precedence: ``~`` before ``&`` before ``|``; use parentheses
when in doubt). ``and`` / ``or`` / ``not`` do not combine filters and raise ``TypeError``.

=============================== =========================================================================
``F.eq(field, value)``          equal (on a KEYWORDS field: any element equals)
``F.ne(field, value)``          ``~F.eq(field, value)``
``F.any_of(field, values)``     equal to one of the values (on KEYWORDS: any element is one of them)
``F.none_of(field, values)``    ``~F.any_of(field, values)``
``F.range(field, gt=, gte=, lt=, lte=)``  numeric bounds (INT64 and DOUBLE fields); at most one lower and one upper
``F.gt/gte/lt/lte(field, x)``   one bound
``F.between(field, lo, hi)``    ``lo <= field <= hi``
``F.all(*f)`` / ``F.any(*f)`` / ``F.not_(f)``  AND / OR / NOT of filters
=============================== =========================================================================

Values are Python ``str`` (KEYWORD and KEYWORDS fields), ``int`` (INT64; also accepted for DOUBLE), ``float``
(DOUBLE) and ``bool`` (BOOL). A point that lacks the field fails every condition on it (and so passes its NOT).

Dict grammar (for those who prefer data to code; LangChain-style ``$`` operators are accepted)::

    FILTER := { KEY: ..., ... }       every key must hold (AND); {} matches every point
    KEY    := "$and": [FILTER, ...]   all hold          (non-empty list)
            | "$or":  [FILTER, ...]   at least one holds (non-empty list)
            | "$not": FILTER          does not hold
            | FIELD: VALUE            FIELD equals VALUE (a str, int, float or bool)
            | FIELD: {OP: ARG, ...}   every OP holds
    OP     := "eq" | "ne"             ARG: a value
            | "in" | "nin"            ARG: a non-empty list of values ("nin": none of them)
            | "gt" | "gte" | "lt" | "lte"   ARG: a number; several combine into one range
            | "between"               ARG: [low, high], both included
            | "not"                   ARG: an {OP: ARG, ...} dict on the same field, negated
            (each OP may also be written with a leading "$": "$eq", "$in", "$gte", ...)

Example: ``{"lang": "en", "year": {"gte": 2020, "lt": 2025}, "$or": [{"tag": {"in": ["a", "b"]}},
{"$not": {"draft": True}}]}``.

Every method that takes ``filter=`` accepts a ``Filter`` (from ``F``), such a dict, a ``quiver.v1.Filter``
protobuf message, or ``None`` (no filter). Malformed filters raise ``ValueError`` before anything is sent; the
server checks the rest against the collection's schema (unknown field, a value of the wrong type:
``QuiverInvalidArgument``).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from ._proto.quiver.v1 import quiver_pb2 as pb

Scalar = Union[str, int, float, bool]
FilterLike = Union["Filter", Mapping[str, Any], Any, None]  # Any: a quiver.v1.Filter message


class Filter:
    """A filter expression; build one with ``F`` and combine with ``&``, ``|`` and ``~``."""

    __slots__ = ("kind", "children", "field", "value", "values", "bounds")

    def __init__(self, kind: str, children: Sequence["Filter"] = (), field: str = "", value: Scalar | None = None,
                 values: Sequence[Scalar] = (), bounds: Optional[dict[str, float]] = None) -> None:
        self.kind = kind  # "all" | "any" | "not" | "eq" | "any_of" | "range"
        self.children = tuple(children)
        self.field = field
        self.value = value
        self.values = tuple(values)
        self.bounds = dict(bounds or {})

    # -- combination --
    def __and__(self, other: object) -> "Filter":
        if not isinstance(other, Filter):
            return NotImplemented
        return Filter("all", _flatten("all", (self, other)))

    def __or__(self, other: object) -> "Filter":
        if not isinstance(other, Filter):
            return NotImplemented
        return Filter("any", _flatten("any", (self, other)))

    def __invert__(self) -> "Filter":
        if self.kind == "not":
            return self.children[0]
        return Filter("not", (self,))

    def __bool__(self) -> bool:
        raise TypeError("a Filter has no truth value: combine filters with &, | and ~, not with and / or / not")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return self.to_proto() == other.to_proto()

    def __hash__(self) -> int:
        return hash(self.to_proto().SerializeToString(deterministic=True))

    def __repr__(self) -> str:
        if self.kind in ("all", "any"):
            op = " & " if self.kind == "all" else " | "
            return "(" + op.join(map(repr, self.children)) + ")"
        if self.kind == "not":
            return f"~{self.children[0]!r}"
        if self.kind == "eq":
            return f"F.eq({self.field!r}, {self.value!r})"
        if self.kind == "any_of":
            return f"F.any_of({self.field!r}, {list(self.values)!r})"
        args = ", ".join(f"{k}={v!r}" for k, v in self.bounds.items())
        return f"F.range({self.field!r}, {args})"

    # -- protobuf --
    def to_proto(self) -> pb.Filter:
        """The ``quiver.v1.Filter`` message."""
        f = pb.Filter()
        if self.kind in ("all", "any"):
            lst = f.all if self.kind == "all" else f.any
            lst.SetInParent()
            lst.filters.extend([c.to_proto() for c in self.children])
        elif self.kind == "not":
            f.negate.CopyFrom(self.children[0].to_proto())
        else:
            c = f.cond
            c.field = self.field
            if self.kind == "eq":
                c.eq.CopyFrom(_scalar_value(self.value, self.field))
            elif self.kind == "any_of":
                c.any_of.SetInParent()
                c.any_of.values.extend([_scalar_value(v, self.field) for v in self.values])
            else:
                c.range.SetInParent()
                for name, bound in self.bounds.items():
                    setattr(c.range, name, bound)
        return f


def _flatten(kind: str, parts: Iterable[Filter]) -> list[Filter]:
    out: list[Filter] = []
    for p in parts:
        if p.kind == kind:
            out.extend(p.children)
        else:
            out.append(p)
    return out


def _check_field(field: object) -> str:
    if not isinstance(field, str) or not field:
        raise ValueError(f"filter: a field name must be a non-empty str, not {field!r}")
    return field


def _check_scalar(v: object, field: str) -> Scalar:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        i = int(v)
        if not -(1 << 63) <= i < (1 << 63):
            raise ValueError(f"filter on field '{field}': {i} is out of the int64 range")
        return i
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x):
            raise ValueError(f"filter on field '{field}': NaN is not a value to compare with")
        return x
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, set, frozenset)):
        raise ValueError(f"filter on field '{field}': a list is not a value to compare with; "
                         f"use F.any_of / {{'{field}': {{'in': [...]}}}} to match any of several values")
    raise ValueError(f"filter on field '{field}': {v!r} ({type(v).__name__}) is not a filter value "
                     "(str, int, float or bool)")


def _scalar_value(v: Any, field: str) -> pb.Value:
    v = _check_scalar(v, field)
    if isinstance(v, bool):
        return pb.Value(bool_value=v)
    if isinstance(v, int):
        return pb.Value(int_value=v)
    if isinstance(v, float):
        return pb.Value(double_value=v)
    return pb.Value(keyword_value=v)


def _bound(v: object, field: str, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"filter: range on field '{field}': {name}={v!r} is not a number")
    x = float(v)
    if math.isnan(x):
        raise ValueError(f"filter: range on field '{field}': {name} is NaN")
    return x


class F:
    """Filter builder: ``F.eq("lang", "en") & F.range("year", gte=2020) | ~F.any_of("tag", ["a", "b"])``."""

    @staticmethod
    def eq(field: str, value: Scalar) -> Filter:
        field = _check_field(field)
        return Filter("eq", field=field, value=_check_scalar(value, field))

    @staticmethod
    def ne(field: str, value: Scalar) -> Filter:
        return ~F.eq(field, value)

    @staticmethod
    def any_of(field: str, values: Iterable[Scalar]) -> Filter:
        field = _check_field(field)
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"filter: any_of on field '{field}' needs a list of values, not {values!r}")
        vals = [_check_scalar(v, field) for v in values]
        if not vals:
            raise ValueError(f"filter: any_of on field '{field}' has no values (it would match nothing)")
        return Filter("any_of", field=field, values=vals)

    @staticmethod
    def none_of(field: str, values: Iterable[Scalar]) -> Filter:
        return ~F.any_of(field, values)

    @staticmethod
    def range(field: str, gt: float | None = None, gte: float | None = None, lt: float | None = None,
              lte: float | None = None) -> Filter:
        field = _check_field(field)
        if gt is not None and gte is not None:
            raise ValueError(f"filter: range on field '{field}' has both gt and gte (one lower bound at most)")
        if lt is not None and lte is not None:
            raise ValueError(f"filter: range on field '{field}' has both lt and lte (one upper bound at most)")
        bounds = {n: _bound(v, field, n) for n, v in (("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte))
                  if v is not None}
        if not bounds:
            raise ValueError(f"filter: range on field '{field}' has no bound (give gt, gte, lt or lte)")
        return Filter("range", field=field, bounds=bounds)

    @staticmethod
    def gt(field: str, x: float) -> Filter:
        return F.range(field, gt=x)

    @staticmethod
    def gte(field: str, x: float) -> Filter:
        return F.range(field, gte=x)

    @staticmethod
    def lt(field: str, x: float) -> Filter:
        return F.range(field, lt=x)

    @staticmethod
    def lte(field: str, x: float) -> Filter:
        return F.range(field, lte=x)

    @staticmethod
    def between(field: str, lo: float, hi: float) -> Filter:
        return F.range(field, gte=lo, lte=hi)

    @staticmethod
    def all(*filters: Filter) -> Filter:
        return _combine("all", filters)

    @staticmethod
    def any(*filters: Filter) -> Filter:
        return _combine("any", filters)

    @staticmethod
    def not_(f: Filter) -> Filter:
        if not isinstance(f, Filter):
            raise ValueError(f"filter: F.not_ takes a Filter, not {f!r}")
        return ~f


def _combine(kind: str, filters: Sequence[Filter]) -> Filter:
    if len(filters) == 1 and isinstance(filters[0], (list, tuple)):
        filters = tuple(filters[0])
    if not filters:
        raise ValueError(f"filter: F.{kind}() needs at least one filter")
    for f in filters:
        if not isinstance(f, Filter):
            raise ValueError(f"filter: F.{kind} takes Filters, not {f!r}")
    if len(filters) == 1:
        return filters[0]
    return Filter(kind, _flatten(kind, filters))


# ---------------------------------------------------------------------------------------------------------------------
# dict form
# ---------------------------------------------------------------------------------------------------------------------
_RANGE_OPS = ("gt", "gte", "lt", "lte")
_OPS = ("eq", "ne", "in", "nin", "between", "not") + _RANGE_OPS


def from_dict(d: Mapping[str, Any]) -> Optional[Filter]:
    """The Filter a dict describes (see the module docstring for the grammar); None for ``{}`` (match all)."""
    return _parse_filter(d, "filter")


def _parse_filter(d: object, where: str) -> Optional[Filter]:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a dict, got {d!r}")
    parts: list[Filter] = []
    for key, arg in d.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys are field names or $and / $or / $not, not {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(arg, (list, tuple)):
                raise ValueError(f"{where}: {key} takes a list of filters, not {arg!r}")
            if not arg:
                raise ValueError(f"{where}: {key} with an empty list")
            subs = [_parse_filter(x, f"{where}.{key}[{i}]") for i, x in enumerate(arg)]
            subs_nonempty = [s for s in subs if s is not None]
            if len(subs_nonempty) != len(subs):
                raise ValueError(f"{where}: {key} holds an empty filter {{}}")
            parts.append(_combine("all" if key == "$and" else "any", subs_nonempty))
        elif key == "$not":
            sub = _parse_filter(arg, f"{where}.$not")
            if sub is None:
                raise ValueError(f"{where}: $not of an empty filter {{}} (it would match nothing)")
            parts.append(~sub)
        elif key.startswith("$"):
            raise ValueError(f"{where}: unknown operator {key!r} (top-level operators: $and, $or, $not)")
        elif isinstance(arg, Mapping):
            parts.append(_parse_ops(key, arg, f"{where}.{key}"))
        elif arg is None:
            raise ValueError(f"{where}: field '{key}' compared with None (a missing attribute cannot be matched; "
                             f"use {{'$not': {{'{key}': ...}}}} for points that lack a value)")
        else:
            parts.append(F.eq(key, arg))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Filter("all", _flatten("all", parts))


def _parse_ops(field: str, ops: Mapping[str, Any], where: str) -> Filter:
    if not ops:
        raise ValueError(f"{where}: an empty operator dict")
    parts: list[Filter] = []
    bounds: dict[str, Any] = {}
    range_at = 0
    for raw_op, arg in ops.items():
        op = raw_op[1:] if isinstance(raw_op, str) and raw_op.startswith("$") else raw_op
        if op not in _OPS:
            raise ValueError(f"{where}: unknown operator {raw_op!r} (operators: {', '.join(_OPS)})")
        if op in _RANGE_OPS:
            if op in bounds:
                raise ValueError(f"{where}: {op} given twice")
            if not bounds:
                range_at = len(parts)  # the range goes where its first bound was written
            bounds[op] = arg
        elif op in ("eq", "ne"):
            f = F.eq(field, arg)
            parts.append(f if op == "eq" else ~f)
        elif op in ("in", "nin"):
            if not isinstance(arg, (list, tuple, set, frozenset)):
                raise ValueError(f"{where}: {raw_op} takes a list of values, not {arg!r}")
            f = F.any_of(field, list(arg))
            parts.append(f if op == "in" else ~f)
        elif op == "between":
            if not isinstance(arg, (list, tuple)) or len(arg) != 2:
                raise ValueError(f"{where}: {raw_op} takes [low, high], not {arg!r}")
            parts.append(F.between(field, arg[0], arg[1]))
        else:  # not
            if not isinstance(arg, Mapping):
                raise ValueError(f"{where}: {raw_op} takes an operator dict, e.g. {{'gte': 1}}, not {arg!r}")
            parts.append(~_parse_ops(field, arg, f"{where}.{raw_op}"))
    if bounds:
        parts.insert(range_at, F.range(field, **bounds))
    return parts[0] if len(parts) == 1 else Filter("all", _flatten("all", parts))


def to_proto(f: FilterLike) -> Optional[pb.Filter]:
    """A Filter, a dict, a ``quiver.v1.Filter`` message or None -> the message (None: no filter)."""
    if f is None:
        return None
    if isinstance(f, Filter):
        return f.to_proto()
    if isinstance(f, pb.Filter):
        return f
    if isinstance(f, Mapping):
        parsed = from_dict(f)
        return parsed.to_proto() if parsed is not None else None
    if hasattr(f, "DESCRIPTOR") and getattr(f.DESCRIPTOR, "full_name", "") == "quiver.v1.Filter":
        # the same message type from other generated stubs (e.g. the README's raw ones)
        m = pb.Filter()
        m.ParseFromString(f.SerializeToString())
        return m
    raise ValueError(f"filter: expected a Filter (from F), a dict or None, not {type(f).__name__}")


__all__ = ["F", "Filter", "FilterLike", "from_dict", "to_proto"]
