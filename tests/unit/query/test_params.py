"""Query-string parsing: Go duration and time formats, Jaeger's parameters and error wording."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from tracemesh.model.span import SpanKind
from tracemesh.query import params
from tracemesh.query.params import (
    ParamError,
    format_go_duration,
    parse_dependencies,
    parse_go_bool,
    parse_go_duration,
    parse_go_int,
    parse_operations,
    parse_path_trace_id,
    parse_rfc3339_nano,
    parse_search,
    parse_tags,
    parse_trace_window,
    parse_v3_dependencies,
    parse_v3_operations,
    parse_v3_search,
    parse_v3_search_body,
    parse_v3_trace_window,
)

NOW = 1_800_000_000_000_000_000
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
UNITS["h"] = 3600 * 10**9


def q(text: str) -> QueryParams:
    return QueryParams(text)


# ---- Go durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1.2s", 1_200_000_000),
        ("100ms", 100_000_000),
        ("1h2m3.5s", 3_723_500_000_000),
        ("500us", 500_000),
        ("500µs", 500_000),
        ("500μs", 500_000),
        ("5000ns", 5000),
        ("0", 0),
        ("-0", 0),
        ("+1m", 60_000_000_000),
        ("-1.5h", -5_400_000_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
        ("1s500ms", 1_500_000_000),
        ("9223372036854775807ns", 2**63 - 1),
        ("-9223372036854775808ns", -(2**63)),
        ("00000000000000000000000001s", 1_000_000_000),
        ("1.00000000000000000000000009s", 1_000_000_000),
    ],
)
def test_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("abc", 'time: invalid duration "abc"'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1 s", 'time: unknown unit " s" in duration "1 s"'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ("1s-1s", 'time: unknown unit "s-" in duration "1s-1s"'),
        ("1s.", 'time: invalid duration "1s."'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
        ("١s", 'time: invalid duration "١s"'),  # non-ASCII digit
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ParamError) as error:
        parse_go_duration(text)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_000_000_000, "1s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (3_600_000_000_000, "1h0m0s"),
        (-(2**63), "-2562047h47m16.854775808s"),
    ],
)
def test_format_go_duration(ns: int, text: str) -> None:
    assert format_go_duration(ns) == text


@given(INT64)
def test_duration_round_trip(ns: int) -> None:
    assert parse_go_duration(format_go_duration(ns)) == ns


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNITS))), min_size=1))
@example([(562048, "h"), (1000000, "h"), (1000000, "h")])  # past int64 only when summed
def test_composite_durations_add_up(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * UNITS[unit] for n, unit in parts)
    if total > 2**63 - 1:  # past int64 nanoseconds (~2.56M hours): Go refuses it, and so do we
        with pytest.raises(ParamError):
            parse_go_duration(text)
    else:
        assert parse_go_duration(text) == total


HOSTILE = st.one_of(
    st.text(alphabet=st.characters(codec=None, exclude_categories=())),  # lone surrogates too
    st.text(alphabet="0123456789.+-nsuµμmh ", max_size=40),
    st.text(alphabet="0123456789", min_size=15, max_size=5000),
    st.sampled_from(["null", "[]", '{"a":1}', "{", "2026-08-20T10:00:00Z", "1ms", "true", "-1"]),
)
PARAM_NAMES = [
    "service",
    "operation",
    "start",
    "end",
    "limit",
    "minDuration",
    "maxDuration",
    "tag",
    "tags",
    "traceID",
    "raw",
    "endTs",
    "lookback",
    "spanKind",
    "query.serviceName",
    "query.startTimeMin",
    "query.startTimeMax",
    "query.start_time_min",
    "query.durationMin",
    "query.searchDepth",
    "query.num_traces",
    "query.attributes",
    "query.rawTraces",
    "startTime",
    "end_time",
    "rawTraces",
    "span_kind",
]


def assert_only_param_error(parse: Callable[[], object]) -> None:
    """Anything but ParamError escapes; its message must be JSON-encodable as the API sends it."""
    try:
        parse()
    except ParamError as exc:
        orjson.dumps(str(exc))


@settings(max_examples=500)
@given(HOSTILE)
def test_hostile_strings_raise_only_param_error(text: str) -> None:
    for parse in (
        parse_go_duration,
        parse_go_int,
        parse_go_bool,
        parse_rfc3339_nano,
        parse_path_trace_id,
    ):
        assert_only_param_error(lambda: parse(text))  # noqa: B023


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(PARAM_NAMES), HOSTILE), max_size=8))
def test_hostile_query_strings_raise_only_param_error(pairs: list[tuple[str, str]]) -> None:
    args = QueryParams(pairs)
    for parse in (
        lambda a: parse_search(a, NOW),
        parse_trace_window,
        parse_operations,
        lambda a: parse_dependencies(a, NOW),
        parse_v3_search,
        parse_v3_trace_window,
        parse_v3_operations,
        parse_v3_dependencies,
    ):
        assert_only_param_error(lambda: parse(args))  # noqa: B023


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_hostile_v3_bodies_raise_only_param_error(body: bytes) -> None:
    assert_only_param_error(lambda: parse_v3_search_body(body))


# ---- other primitives --------------------------------------------------------------------------


def test_go_int_and_bool() -> None:
    assert parse_go_int("+12") == 12
    assert parse_go_int("-0012") == -12
    for bad in ("", " 1", "1_000", "0x10", "1.0", "١"):
        with pytest.raises(ParamError, match="invalid syntax"):
            parse_go_int(bad)
    with pytest.raises(ParamError, match="value out of range"):
        parse_go_int("9223372036854775808")
    with pytest.raises(ParamError, match="value out of range"):
        parse_go_int("2147483648", 32)
    assert parse_go_bool("T") is True
    assert parse_go_bool("False") is False
    with pytest.raises(
        ParamError, match=re.escape('strconv.ParseBool: parsing "yes": invalid syntax')
    ):
        parse_go_bool("yes")


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_rfc3339_matches_datetime(when: dt.datetime) -> None:
    utc = when.replace(tzinfo=dt.UTC)
    text = utc.isoformat().replace("+00:00", "Z")
    expected = (utc - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    assert parse_rfc3339_nano(text) == expected * 1000


def test_rfc3339_forms() -> None:
    assert parse_rfc3339_nano("2026-08-20T10:00:00.000Z") == 1_787_220_000_000_000_000
    assert parse_rfc3339_nano("2026-08-20T12:00:00+02:00") == 1_787_220_000_000_000_000
    assert parse_rfc3339_nano("1970-01-01T00:00:00.123456789999Z") == 123_456_789
    for bad in ("2026-02-30T00:00:00Z", "2026-08-20 10:00:00Z", "2026-08-20T10:00:00", "x"):
        with pytest.raises(ParamError, match="parsing time"):
            parse_rfc3339_nano(bad)


def test_path_trace_ids() -> None:
    full = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert parse_path_trace_id("0af7651916cd43dd8448eb211c80319c") == full
    assert parse_path_trace_id("a1") == bytes(15) + b"\xa1"
    assert parse_path_trace_id("CvdlGRbNQ92ESOshHIAxnA==") == full
    assert parse_path_trace_id("CvdlGRbNQ92ESOshHIAxnA") == full  # unpadded
    url_safe = base64.urlsafe_b64encode(b"\xfb\xff" * 8).decode().rstrip("=")
    assert "-" in url_safe or "_" in url_safe
    assert parse_path_trace_id(url_safe) == b"\xfb\xff" * 8
    for bad in ("", "zz", "0", "0" * 33):
        with pytest.raises(ParamError):
            parse_path_trace_id(bad)


# ---- /api/traces and friends -------------------------------------------------------------------


def test_search_defaults() -> None:
    search = parse_search(q("service=frontend"), NOW)
    assert search.query.service == "frontend"
    assert search.query.start_min_ns == NOW - 48 * 3600 * 10**9
    assert search.query.start_max_ns == NOW
    assert search.query.limit == 100
    assert search.query.duration_min_ns is None and search.query.duration_max_ns is None
    assert search.query.tags == {}
    assert (search.trace_ids, search.raw, search.start_ns, search.end_ns) == ((), False, None, None)


def test_search_full() -> None:
    text = (
        "service=s&operation=GET%20%2F&start=1700000000000000&end=1700000001000000&limit=20"
        "&minDuration=1.5ms&maxDuration=2s&tag=http.url:http://x:80/&tag=a:1"
        '&tags={"a":"2","error":"true"}&tags={"b":"3"}&raw=true&spanKind=server&lookback=1h'
    )
    search = parse_search(q(text), NOW)
    query = search.query
    assert (query.service, query.operation, query.limit) == ("s", "GET /", 20)
    assert (query.start_min_ns, query.start_max_ns) == (
        1_700_000_000 * 10**9,
        1_700_000_001 * 10**9,
    )
    assert (query.duration_min_ns, query.duration_max_ns) == (1_500_000, 2_000_000_000)
    assert query.tags == {"http.url": "http://x:80/", "a": "2", "error": "true", "b": "3"}
    assert search.raw is True


def test_search_by_trace_ids_dedupes_and_keeps_only_explicit_bounds() -> None:
    search = parse_search(q("traceID=a1&traceID=00000000000000a1&traceID=b2&start=5"), NOW)
    assert search.trace_ids == (bytes(15) + b"\xa1", bytes(15) + b"\xb2")
    assert (search.start_ns, search.end_ns) == (5000, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "start=abc",
            "unable to parse param 'start': strconv.ParseInt: parsing \"abc\": invalid syntax",
        ),
        (
            "end=1.5",
            "unable to parse param 'end': strconv.ParseInt: parsing \"1.5\": invalid syntax",
        ),
        (
            "minDuration=10",
            "unable to parse param 'minDuration': time: missing unit in duration \"10\"",
        ),
        ("maxDuration=x", "unable to parse param 'maxDuration': time: invalid duration \"x\""),
        ("minDuration=2s&maxDuration=1s", "'maxDuration' should be greater than 'minDuration'"),
        ("tag=novalue", "malformed 'tag' parameter, expecting key:value, received: novalue"),
        (
            "tags=[1]",
            "malformed 'tags' parameter, cannot unmarshal JSON: expected a JSON object of strings",
        ),
        (
            'tags={"a":1}',
            "malformed 'tags' parameter, cannot unmarshal JSON: value of \"a\" is not a string",
        ),
        (
            "limit=ten",
            "unable to parse param 'limit': strconv.ParseInt: parsing \"ten\": invalid syntax",
        ),
        ("limit=0", "unable to parse param 'limit': must be a positive number"),
        (
            "raw=maybe",
            "unable to parse param 'raw': strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (
            "traceID=xyz",
            "cannot parse traceID param: trace id must be 1 to 32 hex digits, got 'xyz'",
        ),
    ],
)
def test_search_errors(text: str, message: str) -> None:
    with pytest.raises(ParamError) as error:
        parse_search(q("service=s&" + text), NOW)
    assert str(error.value) == message


def test_tags_json_errors_and_null() -> None:
    assert parse_tags([], ["null"]) == {}
    assert parse_tags(["k:"], []) == {"k": ""}
    with pytest.raises(ParamError, match=r"^malformed 'tags' parameter, cannot unmarshal JSON: "):
        parse_tags([], ["{"])


def test_first_value_wins_like_go() -> None:
    assert parse_search(q("service=a&service=b"), NOW).query.service == "a"


def test_trace_window_operations_dependencies() -> None:
    assert parse_trace_window(q("start=1&end=2")) == (1000, 2000)
    assert parse_trace_window(q("")) == (None, None)
    assert parse_operations(q("service=s&spanKind=server")) == ("s", SpanKind.SERVER)
    assert parse_operations(q("service=s&spanKind=")) == ("s", None)
    with pytest.raises(ParamError, match=r"^parameter 'service' is required$"):
        parse_operations(q("spanKind=server"))
    with pytest.raises(ParamError, match="unsupported span kind"):
        parse_operations(q("service=s&spanKind=sideways"))
    assert parse_dependencies(q("endTs=1000&lookback=60000&service=x"), NOW) == (
        10**9,
        60 * 10**9,
        "x",
    )
    assert parse_dependencies(q(""), NOW) == (NOW, 24 * 3600 * 10**9, "")
    with pytest.raises(ParamError, match=r"^unable to parse param 'endTs': "):
        parse_dependencies(q("endTs=soon"), NOW)


# ---- api_v3 ------------------------------------------------------------------------------------

V3_TIMES = "query.startTimeMin=2026-08-20T10:00:00Z&query.startTimeMax=2026-08-20T11:00:00.5Z"


def test_v3_search_camel_case() -> None:
    text = (
        V3_TIMES + "&query.serviceName=s&query.operationName=op&query.durationMin=1ms"
        '&query.durationMax=1s&query.searchDepth=7&query.rawTraces=true&query.attributes={"k":"v"}'
    )
    search = parse_v3_search(q(text))
    query = search.query
    assert (query.service, query.operation, query.limit, query.tags) == ("s", "op", 7, {"k": "v"})
    assert query.start_min_ns == 1_787_220_000_000_000_000
    assert query.start_max_ns == 1_787_223_600_500_000_000
    assert (query.duration_min_ns, query.duration_max_ns) == (10**6, 10**9)
    assert search.raw is True


def test_v3_search_snake_case_aliases() -> None:
    text = (
        "query.start_time_min=2026-08-20T10:00:00Z&query.start_time_max=2026-08-20T11:00:00Z"
        "&query.service_name=s&query.operation_name=op&query.num_traces=3&query.raw_traces=1"
        "&query.duration_min=2ms"
    )
    search = parse_v3_search(q(text))
    assert (search.query.service, search.query.operation, search.query.limit) == ("s", "op", 3)
    assert search.query.duration_min_ns == 2 * 10**6
    assert search.raw is True
    assert parse_v3_search(q(V3_TIMES + "&query.search_depth=4")).query.limit == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query.serviceName=s", "query.startTimeMin and query.startTimeMax are required"),
        (
            "query.startTimeMin=2026-08-20T11:00:00Z&query.startTimeMax=2026-08-20T10:00:00Z",
            "query.startTimeMin must be before query.startTimeMax",
        ),
        (
            "query.start_time_min=yesterday&query.startTimeMax=2026-08-20T10:00:00Z",
            'malformed parameter query.start_time_min: parsing time "yesterday" as '
            '"2006-01-02T15:04:05.999999999Z07:00": invalid time',
        ),
        (
            V3_TIMES + "&query.searchDepth=x",
            'malformed parameter query.searchDepth: strconv.ParseInt: parsing "x": invalid syntax',
        ),
        (
            V3_TIMES + "&query.durationMin=1",
            'malformed parameter query.durationMin: time: missing unit in duration "1"',
        ),
        (
            V3_TIMES + "&query.attributes=[]",
            "malformed parameter query.attributes: expected a JSON object of strings",
        ),
    ],
)
def test_v3_search_errors(text: str, message: str) -> None:
    with pytest.raises(ParamError) as error:
        parse_v3_search(q(text))
    assert str(error.value) == message


def test_v3_search_body() -> None:
    body = (
        b'{"query":{"service_name":"s","attributes":{"a":"b"},"startTimeMin":"2026-08-20T10:00:00Z",'
        b'"startTimeMax":"2026-08-20T11:00:00Z","durationMin":"0.5s","searchDepth":5,"rawTraces":true}}'
    )
    search = parse_v3_search_body(body)
    assert (search.query.service, search.query.tags, search.query.limit) == ("s", {"a": "b"}, 5)
    assert search.query.duration_min_ns == 500_000_000
    assert search.raw is True
    with pytest.raises(ParamError, match="are required"):
        parse_v3_search_body(b"{}")
    with pytest.raises(ParamError, match="malformed request body"):
        parse_v3_search_body(b"not json")
    with pytest.raises(ParamError, match="malformed parameter searchDepth"):
        parse_v3_search_body(b'{"query":{"searchDepth":[1]}}')


def test_v3_other_params() -> None:
    assert parse_v3_trace_window(q("startTime=1970-01-01T00:00:01Z&raw_traces=true")) == (
        10**9,
        None,
        True,
    )
    with pytest.raises(ParamError, match=r"^malformed parameter end_time: parsing time"):
        parse_v3_trace_window(q("end_time=x"))
    assert parse_v3_operations(q("service=s&span_kind=client")) == ("s", SpanKind.CLIENT)
    assert parse_v3_dependencies(
        q("start_time=1970-01-01T00:00:01Z&endTime=1970-01-01T00:00:03Z")
    ) == (3 * 10**9, 2 * 10**9)
    for text, message in [
        ("endTime=1970-01-01T00:00:03Z", "start_time is required"),
        ("startTime=1970-01-01T00:00:03Z", "end_time is required"),
        ("startTime=1970-01-01T00:00:03Z&endTime=1970-01-01T00:00:03Z", "end_time must be after"),
    ]:
        with pytest.raises(ParamError, match=message):
            parse_v3_dependencies(q(text))


def test_quote_is_bounded() -> None:
    assert len(params.quote("x" * 10_000)) < 120
