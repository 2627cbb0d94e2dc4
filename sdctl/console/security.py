"""The console's guard, as Jupyter guards its server on loopback: a random token in the URL the
command prints; the first visit with it sets a cookie (HttpOnly, SameSite=Strict), and every
request needs one or the other. A change (POST) also needs the CSRF token the pages carry (a
form field or the X-CSRF-Token header), and every answer carries a Content-Security-Policy that
lets the page load only its own scripts, styles and images."""

from __future__ import annotations

import hmac
import secrets

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import PlainTextResponse, RedirectResponse

COOKIE = "sdctl_console"
CSP = ("default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class Keys:
    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.csrf = secrets.token_urlsafe(24)

    def valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given, self.token)

    def csrf_valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given, self.csrf)


class Guard(BaseHTTPMiddleware):
    def __init__(self, app, keys: Keys) -> None:
        super().__init__(app)
        self.keys = keys

    async def dispatch(self, request, call_next):
        query = request.query_params.get("token")
        if not (self.keys.valid(request.cookies.get(COOKIE)) or self.keys.valid(query)):
            return _secure(PlainTextResponse("403: open the console with the URL `sdctl console` printed "
                                             "(it carries the token)", status_code=403))
        form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        if request.method == "POST" and not form and not self.keys.csrf_valid(request.headers.get("x-csrf-token")):
            return _secure(PlainTextResponse("403: missing or wrong CSRF token", status_code=403))
        # A form's token is its `csrf` field: the endpoint reads the form and checks it (checked_form).
        if query and request.method == "GET":  # the token's first visit: into a cookie, out of the URL
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
        else:
            response = await call_next(request)
        response.set_cookie(COOKIE, self.keys.token, httponly=True, samesite="strict", path="/")
        return _secure(response)


def _secure(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


async def checked_form(request, keys: Keys) -> dict:
    """A posted form (application/x-www-form-urlencoded: the pages' forms are small, so the
    standard library parses them) whose `csrf` field is the console's (else PermissionError)."""
    from urllib.parse import parse_qsl

    form = dict(parse_qsl((await request.body())[:65536].decode("utf-8", "replace")))
    if not keys.csrf_valid(form.get("csrf") or request.headers.get("x-csrf-token")):
        raise PermissionError("missing or wrong CSRF token")
    return form
