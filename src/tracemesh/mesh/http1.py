"""Sans-IO HTTP/1.1 for the proxy: parsers that turn bytes into events (on httptools' llhttp) and
serializers that turn heads and bodies back into bytes. No sockets, no clocks.

Feed bytes, get a list of events: a head (`RequestHead`/`ResponseHead`), body chunks (plain
`bytes`), `END`, and at most one terminal `Invalid` (the status to answer) or `Tunnel` (what
follows an upgrade or an h2c preface). Header names come out lower-cased, like Envoy forwards
them. The request side is strict where request smuggling lives: llhttp refuses CL+TE, duplicate
Content-Length, obs-fold, bare LF and bad tokens; on top of that we refuse any transfer coding but
a lone `chunked`, a missing or repeated Host, and heads over the limits (431/414).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, Literal, NoReturn

import httptools

Headers = list[tuple[bytes, bytes]]
Framing = Literal["none", "length", "chunked", "close"]  # "close": the body ends at EOF


@dataclass(frozen=True, slots=True)
class Limits:
    max_head_bytes: int = 64 * 1024  # request/status line + headers; 431 beyond
    max_headers: int = 100  # 431 beyond (trailers count too)
    max_target_bytes: int = 8 * 1024  # 414 beyond


DEFAULT_LIMITS: Final = Limits()


@dataclass(slots=True, eq=False)
class RequestHead:
    method: bytes
    target: bytes  # origin-form (or `*`): absolute-form is rewritten, its authority moved to Host
    version: bytes  # b"1.1" or b"1.0"
    headers: Headers  # (lower-cased name, value) in arrival order, hop-by-hop ones included
    keep_alive: bool
    host: bytes = b""
    framing: Framing = "none"
    content_length: int = 0
    connection: bytes = b""  # the Connection header, lower-cased; names more hop-by-hop headers
    upgrade: bytes = b""  # the Upgrade header when this asks to switch protocols (websocket...)


@dataclass(slots=True, eq=False)
class ResponseHead:
    status: int
    reason: bytes
    version: bytes
    headers: Headers
    keep_alive: bool
    framing: Framing = "none"
    content_length: int = 0
    connection: bytes = b""


class End:
    """The message is complete."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END: Final = End()


@dataclass(frozen=True, slots=True)
class Invalid:
    """The stream is unusable from here on: answer `status` (if nothing was sent yet) and close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Tunnel:
    """Raw bytes follow, not HTTP: after an upgrade (`data` is what came after the head) or an
    HTTP/2 prior-knowledge preface (`data` starts with the preface)."""

    data: bytes


Event = RequestHead | ResponseHead | bytes | End | Invalid | Tunnel

H2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# RFC 9110 7.6.1 plus the proxy-only ones; `Connection` can name more.
HOP_BY_HOP: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
     b"upgrade", b"proxy-authorization", b"proxy-authenticate")
)  # fmt: skip
_CONNECTION_PLAIN: Final = frozenset((b"", b"close", b"keep-alive", b"upgrade"))
_SPECIAL: Final = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade")
)
_VERSIONS: Final = {"1.1": b"1.1", "1.0": b"1.0"}


class _Refused(Exception):
    """Raised inside an llhttp callback to stop parsing; the verdict is kept on the parser."""


class _Parser:
    """What both directions share: header collection, limits, error and upgrade handling."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._events: list[Event] = []
        self._failed: Invalid | None = None
        self._refusal: Invalid | None = None
        self._stalled = 0  # bytes fed since the last event: bounds heads, chunk framing, trailers
        self._feeding = 0  # size of the data being fed now
        self._head_fed = 0  # bytes fed since the head began: >= its size, so mostly no count
        self._in_head = False
        self._in_message = False
        self._headers: Headers = []
        self._trailers = 0
        self._special: dict[bytes, bytes] = {}  # host, content-length...: stripped, lower-cased
        self._repeated: set[bytes] | None = None
        self._parser: httptools.HttpRequestParser | httptools.HttpResponseParser

    @property
    def failed(self) -> bool:
        return self._failed is not None

    @property
    def in_head(self) -> bool:
        """A message has begun but its head is not complete yet."""
        return self._in_head

    def _refuse(self, status: int, reason: str) -> NoReturn:
        self._refusal = Invalid(status, reason)
        raise _Refused(reason)

    def feed(self, data: bytes) -> list[Event]:
        """Parse `data`; return the events it completes. Never raises on bad input."""
        if self._failed is not None:
            return [self._failed]
        events = self._events = []
        self._feeding = len(data)
        if self._in_head:
            self._head_fed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            events.append(Tunnel(data[upgrade.args[0] :]))
            self._failed = Invalid(400, "the connection switched protocols")
        except httptools.HttpParserError as exc:
            self._failed = self._refusal or Invalid(self._error_status, f"malformed HTTP: {exc}")
            events.append(self._failed)
        else:
            if events:
                self._stalled = 0
            else:
                self._stalled += len(data)
                if self._stalled > self._limits.max_head_bytes:
                    self._failed = (
                        self._head_too_large
                        if self._in_head
                        else Invalid(self._error_status, "chunk framing or trailers too large")
                    )
                    events.append(self._failed)
        return events

    _error_status = 400
    _head_too_large = Invalid(431, "request head too large")

    def on_message_begin(self) -> None:
        self._in_head = self._in_message = True
        self._head_fed = self._feeding
        self._headers = []
        self._trailers = 0
        self._special = {}
        self._repeated = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:  # the hot path: keep it short
            name = name.lower()
            if name in _SPECIAL:
                if name in self._special:
                    self._note_repeat(name, value)
                else:
                    self._special[name] = value.strip(b" \t").lower()
            self._headers.append((name, value))
        else:  # a trailer: counted against the limit, then dropped
            self._trailers += 1
            if self._trailers > self._limits.max_headers:
                self._refuse(431, "too many trailer fields")

    def _note_repeat(self, name: bytes, value: bytes) -> None:
        self._repeated = (self._repeated or set()) | {name}
        value = value.strip(b" \t").lower()
        if name == b"connection":  # several Connection headers: each names hop-by-hops
            value = self._special[name] + b", " + value
        self._special[name] = value

    def _check_size(self, start_line: int) -> None:
        """Refuse a head over the limits (call when `_head_fed` or the count says it may be)."""
        limits = self._limits
        headers = self._headers
        if len(headers) > limits.max_headers:
            self._refuse(self._head_too_large.status, "too many header fields")
        if self._head_fed > limits.max_head_bytes:
            size = start_line + sum(len(name) + len(value) + 4 for name, value in headers)
            if size > limits.max_head_bytes:
                self._refuse(self._head_too_large.status, self._head_too_large.reason)

    def _is_repeated(self, name: bytes) -> bool:
        return self._repeated is not None and name in self._repeated

    def on_body(self, body: bytes) -> None:
        self._events.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._events.append(END)

    def _framing(self, has_body: bool) -> tuple[Framing, int]:
        special = self._special
        te = special.get(b"transfer-encoding")
        if te is not None:
            if not te.endswith(b"chunked"):  # the length cannot be known (RFC 9112 6.3)
                self._refuse(self._error_status, "the last transfer coding must be chunked")
            if te != b"chunked" or self._is_repeated(b"transfer-encoding"):
                self._refuse(self._coding_status, "only a lone `chunked` transfer coding works")
            return "chunked", 0
        if b"content-length" in special:
            return "length", int(special[b"content-length"])  # llhttp checked the digits
        return ("close" if has_body else "none"), 0

    _coding_status = 501


class RequestParser(_Parser):
    """Parses what a client sends: pipelined requests on one connection."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._target = b""
        self._sniffing = b""  # the connection's first bytes until they rule out an h2 preface
        self._parser = httptools.HttpRequestParser(self)

    def feed(self, data: bytes) -> list[Event]:
        """The first bytes may be an HTTP/2 preface; once they are not, parse plainly."""
        data = self._sniffing + data
        if H2_PREFACE.startswith(data[:24]) and self._failed is None:
            if len(data) < len(H2_PREFACE):
                self._sniffing = data
                return []
            self._failed = Invalid(400, "the connection switched protocols")
            return [Tunnel(data)]
        self._sniffing = b""
        self.feed = super().feed  # type: ignore[method-assign]  # no more sniffing: skip a call
        return self.feed(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._target = b""

    def on_url(self, url: bytes) -> None:
        self._target += url
        if len(self._target) > self._limits.max_target_bytes:
            self._refuse(414, "request target too long")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        assert isinstance(parser, httptools.HttpRequestParser)
        method = parser.get_method()
        target = self._target
        limits = self._limits
        if self._head_fed > limits.max_head_bytes or len(self._headers) > limits.max_headers:
            self._check_size(len(method) + len(target) + 12)
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            self._refuse(505, f"HTTP/{parser.get_http_version()} is not supported")
        if method == b"CONNECT":
            self._refuse(405, "CONNECT is not supported: this is not a forward proxy")
        special = self._special
        host = special.get(b"host")
        if self._repeated is not None and b"host" in self._repeated:
            self._refuse(400, "more than one Host header")
        headers = self._headers
        if target[:1] != b"/" and target != b"*":
            target, host = self._origin_form(target)  # its authority overrides Host (RFC 9112)
            headers[:] = [item for item in headers if item[0] != b"host"]
            headers.append((b"host", host))
        elif host is None and version == b"1.1":
            self._refuse(400, "a Host header is required")
        framing: Framing = "none"
        length = 0
        if len(special) > 1 or host is None:  # more than Host: maybe a body, Connection...
            framing, length = self._framing(has_body=False)
            upgrade = special.get(b"upgrade", b"") if parser.should_upgrade() else b""
            connection = special.get(b"connection", b"")
        else:
            upgrade = connection = b""
        self._events.append(
            RequestHead(method, target, version, headers, parser.should_keep_alive(),
                        host or b"", framing, length, connection, upgrade)
        )  # fmt: skip

    def _origin_form(self, target: bytes) -> tuple[bytes, bytes]:
        """`http://svc:8080/p?q` (what apps send through HTTP_PROXY) -> `/p?q` and `svc:8080`."""
        if target[:7].lower() != b"http://":
            self._refuse(400, "the request target must be origin-form or an http:// URL")
        rest = target[7:]
        end = len(rest)
        for stop in b"/?#":
            at = rest.find(bytes((stop,)))
            if at != -1:
                end = min(end, at)
        authority, path = rest[:end], rest[end:]
        if not authority or b"@" in authority:
            self._refuse(400, "the URL needs a host and no user info")
        path = path.split(b"#", 1)[0]
        if not path.startswith(b"/"):
            path = b"/" + path
        return path, authority.lower()


class ResponseParser(_Parser):
    """Parses what an upstream answers, one response per request sent (call `start` first).

    The reason phrase is the standard one for the status, as Envoy sends it: a custom phrase is
    not kept (skipping it saves a callback per response)."""

    _error_status = 502  # an upstream speaking bad HTTP is a bad gateway
    _coding_status = 502
    _head_too_large = Invalid(502, "response head too large")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._no_body = False
        self._cut_short = False  # a HEAD response ended at its head; llhttp still expects a body
        self.garbage = False  # bytes arrived that belong to no response: do not reuse
        self._parser = httptools.HttpResponseParser(self)

    def start(self, method: bytes) -> None:
        """Expect the response to a `method` request (HEAD responses have no body)."""
        self._no_body = method == b"HEAD"
        if self._cut_short:
            self._parser = httptools.HttpResponseParser(self)
            self._cut_short = self._in_message = False

    @property
    def idle(self) -> bool:
        """Between responses, with nothing unexplained received: the connection can be reused."""
        return not self._in_message and not self.garbage and self._failed is None

    def eof(self) -> list[Event]:
        """The upstream closed its side: ends a read-until-close body, else an error if mid-way."""
        if self._failed is not None or not self._in_message:
            return []
        if not self._in_head and self._close_delimited:
            self._in_message = False
            return [END]
        self._failed = Invalid(502, "the upstream closed the connection mid-response")
        return [self._failed]

    _close_delimited = False

    def on_message_begin(self) -> None:
        if self._cut_short:
            self.garbage = True
            return
        super().on_message_begin()

    def on_body(self, body: bytes) -> None:
        if self._cut_short:
            self.garbage = True
        else:
            self._events.append(body)

    def on_message_complete(self) -> None:
        if self._cut_short:  # llhttp saw the HEAD response's body as empty: in step again
            self._cut_short = False
        else:
            super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        assert isinstance(parser, httptools.HttpResponseParser)
        status = parser.get_status_code()
        limits = self._limits
        if self._head_fed > limits.max_head_bytes or len(self._headers) > limits.max_headers:
            self._check_size(len(b"HTTP/1.1 000 \r\n"))
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            self._refuse(502, f"HTTP/{parser.get_http_version()} response")
        no_body = self._no_body or status < 200 or status in (204, 304)
        framing: Framing = "none"
        length = 0
        if not no_body:
            framing, length = self._framing(has_body=True)
        self._close_delimited = framing == "close"
        special = self._special
        self._events.append(
            ResponseHead(status, reason_phrase(status), version, self._headers,
                         parser.should_keep_alive() and framing != "close", framing, length,
                         special.get(b"connection", b""))
        )  # fmt: skip
        if self._no_body and status >= 200:
            # llhttp cannot be told about HEAD: end the message here, start afresh next time
            self._cut_short = True
            self._in_message = False
            self._events.append(END)


# -- serializers --------------------------------------------------------------------------------

LAST_CHUNK: Final = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _dropped(connection: bytes, keep: bytes) -> frozenset[bytes]:
    """Hop-by-hop names for a message whose Connection header is `connection` (lower-cased)."""
    named = {token.strip() for token in connection.split(b",")}
    return (HOP_BY_HOP | named) - {keep}


def encode_request(
    head: RequestHead,
    *,
    set_headers: Sequence[tuple[bytes, bytes]] = (),
    remove: Iterable[bytes] = (),
    host: bytes | None = None,
    target: bytes | None = None,
) -> bytes:
    """The head to send upstream: hop-by-hop headers dropped, `set_headers` replacing any of the
    same name, `remove` dropped, Host replaced by `host` when given, framing re-declared.
    (`remove` need not repeat the names in `set_headers`.)"""
    if head.connection in _CONNECTION_PLAIN and not head.upgrade:
        drop = HOP_BY_HOP
    else:
        drop = _dropped(head.connection, b"upgrade" if head.upgrade else b"")
    if set_headers or remove:
        drop = drop.union(remove, [name for name, _ in set_headers])
    if host is not None:
        drop = drop | {b"host"}
        set_headers = [(b"host", host), *set_headers]
    # comprehensions: about twice as fast as appending in a loop, on the proxy's hottest path
    parts = [b"%b %b HTTP/1.1\r\n" % (head.method, target or head.target)]
    parts += [b"%b: %b\r\n" % item for item in head.headers if item[0] not in drop]
    parts += [b"%b: %b\r\n" % item for item in set_headers]
    if head.framing == "chunked":
        parts.append(b"transfer-encoding: chunked\r\n")
    if head.upgrade:
        parts.append(b"connection: upgrade\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_response(head: ResponseHead, *, chunked: bool, connection: bytes = b"") -> bytes:
    """The head to send the client: hop-by-hop headers dropped, then `transfer-encoding: chunked`
    when the proxy chunks the body, and `connection: <connection>` when given."""
    if head.connection in _CONNECTION_PLAIN and head.status != 101:
        drop = HOP_BY_HOP
    else:
        drop = _dropped(head.connection, b"upgrade" if head.status == 101 else b"")
    parts = [b"HTTP/1.1 %d %b\r\n" % (head.status, head.reason)]
    parts += [b"%b: %b\r\n" % item for item in head.headers if item[0] not in drop]
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    if connection:
        parts.append(b"connection: %b\r\n" % connection)
    parts.append(b"\r\n")
    return b"".join(parts)


def local_response(
    status: int,
    body: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    close: bool = False,
    keep_alive_header: bool = False,
    head_only: bool = False,
) -> bytes:
    """A whole response the proxy answers itself (a refusal, a route's direct response)."""
    parts = [b"HTTP/1.1 %d %b\r\n" % (status, reason_phrase(status))]
    append = parts.append
    has_type = False
    for name, value in headers:
        has_type = has_type or name.lower() == b"content-type"
        append(b"%b: %b\r\n" % (name, value))
    if body and not has_type:
        append(b"content-type: text/plain; charset=utf-8\r\n")
    append(b"content-length: %d\r\n" % len(body))
    if close:
        append(b"connection: close\r\n")
    elif keep_alive_header:
        append(b"connection: keep-alive\r\n")
    append(b"\r\n")
    if not head_only:
        append(body)
    return b"".join(parts)


_PHRASES: Final = {status.value: status.phrase.encode() for status in HTTPStatus}


def reason_phrase(status: int) -> bytes:
    return _PHRASES.get(status, b"Unknown")
