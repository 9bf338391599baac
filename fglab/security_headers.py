"""Security headers on every answer of FGLab (pages, API, files, errors).

The Content-Security-Policy lets a page run only script files served by FGLab itself: no
inline code, no ``on*=`` attributes, no ``eval``, nothing from elsewhere. So text that a
program or an API user stored (chart settings, names, notes) cannot become script even
where a bug put it into the HTML. C3/D3 and Swagger UI set inline styles, hence
``'unsafe-inline'`` for styles only; images may be ``data:`` URLs (the blank favicon,
Swagger UI's icons). A view that sets one of these headers itself keeps its own.
"""

from __future__ import annotations

from flask import Flask, Response

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "install_security_headers"]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # A stored file served as text/plain is never sniffed into HTML or script.
    "X-Content-Type-Options": "nosniff",
    # Experiment IDs in FGLab's URLs stay on FGLab when a page links elsewhere.
    "Referrer-Policy": "same-origin",
}


def install_security_headers(app: Flask) -> None:
    """Add :data:`SECURITY_HEADERS` to every response `app` sends."""

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
