"""The OpenTelemetry translator's rules for the Jaeger tags that become OTLP fields: the status
(`error`, `otel.status_code`, HTTP status) and the instrumentation scope. Thrift and api_v2 spans
carry the same tags, so both decoders share these rules."""

from __future__ import annotations

import re

from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.span import SpanKind, Status, StatusCode

_INT64 = range(-(2**63), 2**63)
_GO_INT = re.compile(r"[+-]?[0-9]+")
_NAMED = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR}


def status_from_attributes(attributes: Attributes, kind: SpanKind) -> Status:
    """`error=true` decides first; else `otel.status_code`; else an HTTP status that means failure.
    Removes the tags that became the status; `http.status_code` stays an attribute."""
    code, message, found = StatusCode.UNSET, "", False
    if attributes.get("error") is True:
        del attributes["error"]
        code, found = StatusCode.ERROR, True
        if "otel.status_description" in attributes:
            message = text(attributes.pop("otel.status_description"))
        elif "http.status_message" in attributes:
            message = text(attributes["http.status_message"])
    if "otel.status_code" in attributes:
        named = attributes.pop("otel.status_code")
        if not found:
            found = True
            code = _NAMED.get(text(named).upper(), StatusCode.UNSET)
            if "otel.status_description" in attributes:
                message = text(attributes.pop("otel.status_description"))
    elif not found and "http.status_code" in attributes:
        http_code = http_status(attributes["http.status_code"])
        if http_code is not None:
            code = status_from_http(http_code, kind)
            found = code is not StatusCode.UNSET
            message = text(attributes.get("http.status_message", ""))
    return Status(code, message) if found else Status()


def http_status(value: AttrValue) -> int | None:
    """An integer `http.status_code`, or a string of one as Go's strconv reads it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _GO_INT.fullmatch(value):
        # More than 19 significant digits is out of int64's range anyway, and int() of thousands
        # of digits raises instead of answering.
        if len(value.lstrip("+-").lstrip("0")) > 19:
            return None
        number = int(value)
        return number if number in _INT64 else None
    return None


def status_from_http(code: int, kind: SpanKind) -> StatusCode:
    """4xx is the client's failure, not the server's; 1xx-3xx are fine; anything else failed."""
    if 400 <= code < 500 and kind in (SpanKind.CLIENT, SpanKind.SERVER):
        return StatusCode.ERROR if kind is SpanKind.CLIENT else StatusCode.UNSET
    return StatusCode.UNSET if 100 <= code < 399 else StatusCode.ERROR


def pop_scope(attributes: Attributes) -> tuple[str, str]:
    """(name, version) of `otel.scope.*` tags, removed from the attributes."""
    if "otel.scope.name" not in attributes:
        return ("", "")
    name = attributes.pop("otel.scope.name")
    version = attributes.pop("otel.scope.version", "")
    return (text(name), text(version))


def text(value: AttrValue) -> str:
    return value if isinstance(value, str) else ""
