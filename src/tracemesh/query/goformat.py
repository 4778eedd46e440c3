"""Go's text formats as Jaeger's API parses them: integers, booleans, durations, RFC 3339 times.

Jaeger's query service is written in Go, so its parameters follow `strconv` and `time`; matching
them exactly (and their error wording) keeps clients that were written against Jaeger working.
"""

from __future__ import annotations

import datetime as dt
import re

import orjson

HOUR_NS = 3_600_000_000_000
_INT64_MAX = 2**63 - 1
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": HOUR_NS,
}
_DIGITS = frozenset("0123456789")
_NUMBER_CHARS = _DIGITS | {"."}
_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_RFC3339_LAYOUT = "2006-01-02T15:04:05.999999999Z07:00"
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


class ParamError(ValueError):
    """A query parameter is missing or malformed; the message is shown to the caller."""


def quote(text: str, limit: int = 100) -> str:
    """Go's `%q`-like quoting, cut short so an error message never echoes megabytes back."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return orjson.dumps(text.encode("utf-8", "replace").decode()).decode()  # no lone surrogates


def parse_go_int(text: str, bits: int = 64) -> int:
    """Go's `strconv.ParseInt(text, 10, bits)`: optional sign, decimal digits, nothing else."""
    if not _GO_INT.fullmatch(text):
        raise ParamError(f"strconv.ParseInt: parsing {quote(text)}: invalid syntax")
    value = int(text) if len(text.lstrip("+-").lstrip("0")) <= 20 else 2**bits
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ParamError(f"strconv.ParseInt: parsing {quote(text)}: value out of range")
    return value


def parse_go_bool(text: str) -> bool:
    """Go's `strconv.ParseBool`: 1/t/T/TRUE/true/True and their false counterparts."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ParamError(f"strconv.ParseBool: parsing {quote(text)}: invalid syntax")


def parse_go_duration(text: str) -> int:
    """Go's `time.ParseDuration` in nanoseconds: `[-+]?([0-9]*(\\.[0-9]*)?[a-zµμ]+)+` or `0`."""
    invalid = ParamError(f"time: invalid duration {quote(text)}")
    s, negative = text, False
    if s[:1] in ("-", "+"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if s[0] not in _NUMBER_CHARS:
            raise invalid
        digits = _leading_digits(s)
        s = s[len(digits) :]
        significant = digits.lstrip("0")
        if len(significant) > 19 or int(significant or "0") > 2**63:
            raise invalid
        whole = int(significant or "0")
        frac_digits = ""
        if s[:1] == ".":
            frac_digits = _leading_digits(s[1:])
            s = s[1 + len(frac_digits) :]
            if not digits and not frac_digits:
                raise invalid
        end = 0
        while end < len(s) and s[end] not in _NUMBER_CHARS:
            end += 1
        if end == 0:
            raise ParamError(f"time: missing unit in duration {quote(text)}")
        unit_name, s = s[:end], s[end:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise ParamError(f"time: unknown unit {quote(unit_name)} in duration {quote(text)}")
        if whole > 2**63 // unit:
            raise invalid
        value = whole * unit + _fraction_ns(frac_digits, unit)
        total += value
        if value > 2**63 or total > 2**63:
            raise invalid
    if negative:
        return -total
    if total > _INT64_MAX:
        raise invalid
    return total


def _leading_digits(s: str) -> str:
    end = 0
    while end < len(s) and s[end] in _DIGITS:
        end += 1
    return s[:end]


def _fraction_ns(digits: str, unit: int) -> int:
    """Go's arithmetic: digits past int64 precision are ignored, the product is a float64."""
    numerator, scale = 0, 1.0
    for char in digits:
        if numerator > _INT64_MAX // 10:
            break
        numerator = numerator * 10 + int(char)
        scale *= 10
    return int(float(numerator) * (float(unit) / scale)) if numerator else 0


def format_go_duration(ns: int) -> str:
    """Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `500µs`, `0s`."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_decimal(u, 3)}\u00b5s"
        return f"{sign}{_decimal(u, 6)}ms"
    seconds, frac_ns = divmod(u, 1_000_000_000)
    out = f"{_decimal(seconds % 60 * 1_000_000_000 + frac_ns, 9)}s"
    minutes = seconds // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        if minutes // 60:
            out = f"{minutes // 60}h{out}"
    return sign + out


def _decimal(value: int, places: int) -> str:
    whole, frac = divmod(value, 10**places)
    digits = str(frac).rjust(places, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_rfc3339_nano(text: str) -> int:
    """Go's `time.Parse(time.RFC3339Nano, text)` as Unix nanoseconds."""
    match = _RFC3339.fullmatch(text)
    error = ParamError(f"parsing time {quote(text)} as {quote(_RFC3339_LAYOUT)}: invalid time")
    if match is None:
        raise error
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    try:
        ordinal = dt.date(year, month, day).toordinal()
    except ValueError:
        raise error from None
    if hour > 23 or minute > 59 or second > 59:
        raise error
    offset = 0
    if zone not in ("Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise error
        offset = (hours * 3600 + minutes * 60) * (-1 if zone[0] == "-" else 1)
    seconds = (ordinal - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60 + second - offset
    return seconds * 1_000_000_000 + int(fraction[:9].ljust(9, "0"))
