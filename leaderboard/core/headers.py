"""Security headers, as pure ASGI middleware: a nonce-based CSP on every HTML page.

Every response gets ``X-Content-Type-Options: nosniff``. An HTML response also gets:

- ``Content-Security-Policy``: scripts and styles only from this site (``'self'``: the
  locally served plotly bundle) or inline with this response's nonce (the page's own
  ``<script>``/``<style>``, marked ``nonce="{{ request.state.csp_nonce }}"``); nothing
  else loads, no plugin, no ``<base>``, forms post only here, and no site may frame it;
- ``X-Frame-Options: DENY`` (``frame-ancestors`` for browsers without CSP 2);
- ``Referrer-Policy: no-referrer``: a submission's URL never leaks to a linked code host.

A fresh nonce per response, in ``scope["state"]`` (``request.state.csp_nonce``), so the
templates can mark their inline blocks; an injected ``<script>`` cannot guess it.
"""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'self' 'nonce-{nonce}'; "
       "style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_ALWAYS = [(b"x-content-type-options", b"nosniff")]
_HTML = [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Pages live outside /api/ (errors included): an API request needs no nonce, and a
        # submission burst should not pay for one.
        nonce = "" if scope["path"].startswith("/api/") else secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                headers += _ALWAYS
                if content_type.startswith(b"text/html") and nonce:
                    if not any(k.lower() == b"content-security-policy" for k, _ in headers):
                        policy = CSP.format(nonce=nonce).encode()  # else: the page's own
                        headers.append((b"content-security-policy", policy))
                    headers += _HTML
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
