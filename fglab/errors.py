"""Errors FGLab turns into HTTP answers.

    FGLabError                  -> 500 (message shown as {"error": ...})
    ├── BadRequest (ValueError) -> 400
    ├── NotFound (LookupError)  -> 404
    ├── Conflict                -> 409
    ├── TooLarge                -> 413 (a body past a cap; the message says the cap)
    ├── WrongMediaType          -> 415 (a JSON route sent a body that is not JSON)
    ├── NoCapacity              -> 501 (the original's "No machine capacity available")
    └── Unavailable             -> 503 (MongoDB or Redis out of reach)

One error handler in :mod:`fglab.app` maps them; views only raise.
"""

from __future__ import annotations


class FGLabError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class NoCapacity(FGLabError):
    status = 501


class Unavailable(FGLabError):
    status = 503
