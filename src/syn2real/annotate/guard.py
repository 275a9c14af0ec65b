"""The app's ASGI middleware: what every HTTP request must pass before any route runs, and what every response
carries. Each is a small pure-ASGI class; `create_app` stacks them.

* `LoopbackHostOnly`: without a token the app only answers Host headers naming this machine; otherwise a web
  page the labeller visits could reach the loopback server through DNS rebinding. The header is parsed
  strictly (`parse_host`): `localhost`, `127.0.0.1:8000`, `[::1]`, `[::1]:8000` pass; `[::1].evil.example`,
  `localhost.evil.example`, `127.0.0.1@evil`, an empty or repeated Host do not.
* `BodyLimit`: bodies must declare a Content-Length of at most MAX_BODY_BYTES (411 without one, 413 above).
* `SecurityHeaders`: the page's scripts stay its own (CSP), no Referer (the page's address may hold the
  token), and API answers are never cached.
"""

from __future__ import annotations

import ipaddress
import json
import re

#: The largest request body. An answer's labels are run lengths over its request's box (a brushed region is a
#: few runs per row); a region of 1 % of a 2048x1024 image answered pixel by pixel as corrections is ~0.3 MB.
MAX_BODY_BYTES = 1 << 20

#: A Host header: a bracketed IPv6 literal or a name of letters, digits, dots and hyphens, then nothing or
#: `:port`. Anything else (userinfo, paths, spaces, trailing text after `]`) does not match.
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>[0-9]{1,5}))?")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address, or the name `parse_host` returns) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_host(header: str) -> tuple[str, int | None] | None:
    """A Host header's (name, port), or None when it is not exactly `name[:port]` or `[ipv6][:port]`.

    'localhost:8000' -> ('localhost', 8000), '[::1]' -> ('::1', None); '[::1].evil.example',
    '127.0.0.1@evil', 'localhost:', 'localhost:99999' and '' -> None."""
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    port = match["port"]
    if port is not None and int(port) > 65535:
        return None
    if match["ipv6"] is not None:
        try:
            name = str(ipaddress.IPv6Address(match["ipv6"]))
        except ValueError:
            return None
    else:
        name = match["name"]
        if not all(_LABEL.fullmatch(label) for label in name.split(".")):
            return None  # empty labels ('a..b', a trailing dot), labels of 64+ characters, leading hyphens
    return name, None if port is None else int(port)


def host_is_loopback(header: str) -> bool:
    """Whether a Host header names this machine (see `parse_host`)."""
    parsed = parse_host(header)
    return parsed is not None and is_loopback(parsed[0])


async def send_error(send, status: int, message: str) -> None:
    """A JSON error response ({"detail": message}) straight from middleware."""
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class LoopbackHostOnly:
    """400 unless the request carries exactly one Host header and it names this machine."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            hosts = [value for name, value in scope["headers"] if name == b"host"]
            if len(hosts) != 1 or not host_is_loopback(hosts[0].decode("latin-1")):
                return await send_error(send, 400, "the server is bound to loopback: address it as 127.0.0.1, "
                                                   "localhost or [::1] (or restart it with --host and use its token)")
        await self.app(scope, receive, send)


class BodyLimit:
    """411 for a body without Content-Length, 413 for one declared larger than `max_bytes`: refused before a
    byte of it is read."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if b"transfer-encoding" in headers:
                return await send_error(send, 411, "send the body with a Content-Length")
            length = headers.get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self.max_bytes:
                return await send_error(send, 413, f"the body must be at most {self.max_bytes} bytes")
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Marks every HTTP response: CSP, nosniff, no Referer; `no-store` on /api/."""

    HEADERS = (
        (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = list(self.HEADERS)
        if scope["path"].startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_marked(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_marked)
