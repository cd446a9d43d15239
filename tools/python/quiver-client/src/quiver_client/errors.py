"""Exceptions: one class per gRPC status the server answers with, all under ``QuiverError``.

Each carries the server's message (``message``), the status (``code``, a ``grpc.StatusCode``) and the method that
failed (``method``, e.g. ``"Quiver/Search"``). Some also derive from the matching built-in exception, so code that
knows nothing of Quiver still catches them sensibly: ``QuiverInvalidArgument`` is a ``ValueError``,
``QuiverNotFound`` a ``LookupError``, ``QuiverDeadlineExceeded`` a ``TimeoutError``, ``QuiverUnavailable`` a
``ConnectionError``.

Mistakes the client finds itself, before anything is sent (a malformed filter, a point without an id, an
attribute of an unsupported type), raise ``ValueError`` / ``TypeError`` instead.
"""
from __future__ import annotations

from typing import Optional

import grpc


class QuiverError(Exception):
    """A call failed: ``code`` is the gRPC status, ``message`` the server's explanation."""

    code: Optional[grpc.StatusCode] = None

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, method: Optional[str] = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.method = method
        super().__init__(message)

    def __str__(self) -> str:
        where = f" ({self.method})" if self.method else ""
        name = self.code.name if self.code is not None else "ERROR"
        return f"{name}{where}: {self.message}"

    def __reduce__(self):  # type: ignore[no-untyped-def]  # keep code and method through pickling
        return (type(self), (self.message, self.code, self.method))


class QuiverCancelled(QuiverError):
    code = grpc.StatusCode.CANCELLED


class QuiverUnknown(QuiverError):
    code = grpc.StatusCode.UNKNOWN


class QuiverInvalidArgument(QuiverError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class QuiverDeadlineExceeded(QuiverError, TimeoutError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class QuiverNotFound(QuiverError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class QuiverAlreadyExists(QuiverError):
    code = grpc.StatusCode.ALREADY_EXISTS


class QuiverPermissionDenied(QuiverError):
    code = grpc.StatusCode.PERMISSION_DENIED


class QuiverResourceExhausted(QuiverError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class QuiverFailedPrecondition(QuiverError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class QuiverAborted(QuiverError):
    code = grpc.StatusCode.ABORTED


class QuiverOutOfRange(QuiverError):
    code = grpc.StatusCode.OUT_OF_RANGE


class QuiverUnimplemented(QuiverError):
    code = grpc.StatusCode.UNIMPLEMENTED


class QuiverInternal(QuiverError):
    code = grpc.StatusCode.INTERNAL


class QuiverUnavailable(QuiverError, ConnectionError):
    code = grpc.StatusCode.UNAVAILABLE


class QuiverDataLoss(QuiverError):
    code = grpc.StatusCode.DATA_LOSS


class QuiverUnauthenticated(QuiverError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[QuiverError]] = {
    cls.code: cls
    for cls in (QuiverCancelled, QuiverUnknown, QuiverInvalidArgument, QuiverDeadlineExceeded, QuiverNotFound,
                QuiverAlreadyExists, QuiverPermissionDenied, QuiverResourceExhausted, QuiverFailedPrecondition,
                QuiverAborted, QuiverOutOfRange, QuiverUnimplemented, QuiverInternal, QuiverUnavailable,
                QuiverDataLoss, QuiverUnauthenticated)
    if cls.code is not None
}


def error_class(code: grpc.StatusCode) -> type[QuiverError]:
    """The exception class for a status (``QuiverError`` itself for one without a class of its own)."""
    return _BY_CODE.get(code, QuiverError)


def from_rpc_error(e: grpc.RpcError, method: Optional[str] = None) -> QuiverError:
    """The QuiverError for a failed gRPC call (sync or grpc.aio)."""
    code_fn = getattr(e, "code", None)
    details_fn = getattr(e, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    message = (details_fn() if callable(details_fn) else None) or str(e)
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    return error_class(code)(message, code, method)


__all__ = [
    "QuiverError", "QuiverCancelled", "QuiverUnknown", "QuiverInvalidArgument", "QuiverDeadlineExceeded",
    "QuiverNotFound", "QuiverAlreadyExists", "QuiverPermissionDenied", "QuiverResourceExhausted",
    "QuiverFailedPrecondition", "QuiverAborted", "QuiverOutOfRange", "QuiverUnimplemented", "QuiverInternal",
    "QuiverUnavailable", "QuiverDataLoss", "QuiverUnauthenticated", "error_class", "from_rpc_error",
]
