"""LangChain (Chroma-style) metadata filters -> quiver_client filters.

LangChain's dict filters are quiver_client's dict grammar (``quiver_client.filters``, which takes the ``$``
operators), so this only says what a LangChain user may pass::

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
``Filter`` (``F.eq(...) & ...``) or a ``quiver.v1.Filter`` message is accepted as it is.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from quiver_client import Filter
from quiver_client.filters import from_dict


def to_quiver_filter(flt: Any) -> Optional[Any]:
    """The quiver_client filter for a LangChain filter dict (None: no filter); malformed ones raise ValueError."""
    if flt is None or isinstance(flt, Filter):
        return flt
    if isinstance(flt, Mapping):
        return from_dict(flt)
    if hasattr(flt, "SerializeToString"):  # a quiver.v1.Filter message
        return flt
    raise ValueError(f"filter must be a dict or a quiver_client Filter, not {type(flt).__name__}")
