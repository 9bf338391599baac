"""Errors FGLab turns into HTTP answers.

    FGLabError                  -> 500 (message shown as {"error": ...})
    ├── BadRequest (ValueError) -> 400
    ├── NotFound (LookupError)  -> 404
    ├── Conflict                -> 409
    ├── TooLarge                -> 413 (a body past a cap; the message says the cap)
    ├── WrongMediaType          -> 415 (a JSON route sent a body that is not JSON)
    ├── TooManyRequests         -> 429 (a client past a per-client cap)
    ├── NoCapacity              -> 501 (the original's "No machine capacity available")
    └── Unavailable             -> 503 (MongoDB or Redis out of reach, a cap in all reached)

One error handler in :mod:`fglab.app` maps them; views only raise. An error with
`retry_after` (seconds) is answered with a ``Retry-After`` header.
"""

from __future__ import annotations


class FGLabError(Exception):
    status = 500

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(FGLabError, ValueError):
    status = 400


class NotFound(FGLabError, LookupError):
    status = 404


class Conflict(FGLabError):
    status = 409


class TooLarge(FGLabError):
    status = 413


class WrongMediaType(FGLabError):
    status = 415


class TooManyRequests(FGLabError):
    status = 429


class NoCapacity(FGLabError):
    status = 501


class Unavailable(FGLabError):
    status = 503
