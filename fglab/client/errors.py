"""What the client raises: the API's JSON error message and HTTP status, or why no answer came.

    FGLabError (message, status)                 any refusal; `status` is the HTTP status
    ├── BadRequest (ValueError)        400       bad options, spec, filter... (nothing stored)
    ├── Unauthorized (PermissionError) 401       PASSWORD is set: send a token
    ├── NotFound (LookupError)         404       no such project, experiment, sweep or file
    ├── Conflict                       409       e.g. killing an experiment that ended
    ├── Unreachable (ConnectionError)  None      no answer from the URL at all
    └── WaitTimeout (TimeoutError)     None      `.wait(timeout=)` ran out first

These are the client's own classes; `fglab.errors` holds the server's.
"""

from __future__ import annotations


class FGLabError(Exception):
    """A request FGLab refused (or could not be sent); `status` is None without an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class BadRequest(FGLabError, ValueError):
    pass


class Unauthorized(FGLabError, PermissionError):
    pass


class NotFound(FGLabError, LookupError):
    pass


class Conflict(FGLabError):
    pass


class Unreachable(FGLabError, ConnectionError):
    pass


class WaitTimeout(FGLabError, TimeoutError):
    pass


_BY_STATUS: dict[int, type[FGLabError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
}


def error_for(status: int, message: str) -> FGLabError:
    """The exception for an HTTP error answer."""
    return _BY_STATUS.get(status, FGLabError)(message, status)
