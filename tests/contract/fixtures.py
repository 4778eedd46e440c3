"""One fixture data set and a table of queries over it, with the traces each must find.

Every search dimension appears here: service, operation, span kind, span / event / link /
resource / scope tags, typed values, values with characters that mean something to SQL, regular
expressions or query strings, the special tag keys (`error`, `span.kind`, `otel.status_code`,
`scope.name`, `resource.*`), durations, time windows and limits. A backend runs the whole table
(`test_search_table.py`); a case naming a capability the backend lacks is skipped, and a case
marked `literal` is skipped for backends whose tag values are regular expressions.

Trace numbers are small ints (`traces.trace_id(n)`); `expected` lists them newest trace start
first when `ordered`, else compares as a set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.contract.traces import MINUTE, MS, event, make_span, process
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import Link, Scope, Span, SpanKind, StatusCode

# Values that a store building SQL LIKE patterns, regular expressions, query strings or JSON by
# hand would get wrong. Each is stored on its own trace beside a near miss that such a store
# would also return (see SPECIAL_NEAR_MISS).
SPECIAL_VALUES: dict[str, str] = {
    "percent": "100%",
    "underscore": "a_c",
    "star": "wild*card",
    "regex": "^(a|b)+.*[x-z]?$",
    "dot": "v1.2",
    "quotes": "say \"hi\" and 'bye'",
    "backslash": "C:\\path\\n",
    "equals-spaces": "k = v & w=x",
    "unicode": "ünïcödé ✓ 追踪 🚀",
    "json": '{"a": [1, "b"]}',
    "braces": "${jndi:ldap://x}",
    "newline": "two\nlines\ttab",
    "empty-looking": " ",
}
SPECIAL_NEAR_MISS: dict[str, str] = {
    "percent": "1000",
    "underscore": "abc",
    "star": "wildXXcard",
    "regex": "aab",
    "dot": "v1x2",
    "quotes": "say hi and bye",
    "backslash": "C:\\path\n",
    "equals-spaces": "k=v&w=x",
    "unicode": "unicode",
    "json": '{"a":[1,"b"]}',
    "braces": "jndi:ldap://x",
    "newline": "two lines tab",
    "empty-looking": "",
}

# Start offsets (minutes after BASE_NS) of the search traces; all end up in the last hour.
T_EARLY, T_MID, T_LATE = 2, 20, 40


@dataclass(frozen=True)
class Case:
    name: str
    query: TraceQuery
    expected: tuple[int, ...]
    ordered: bool = False
    needs: tuple[str, ...] = ()  # Capabilities fields that must be true
    literal: bool = False  # tag values must compare literally (skip where tag_regex)


@dataclass
class Dataset:
    spans: list[Span] = field(default_factory=list)

    def add(self, *spans: Span) -> None:
        self.spans.extend(spans)


def _mins(minutes: float) -> float:
    return minutes * MINUTE / MS


def build() -> Dataset:
    """Traces 100-199 for the query table, each built to be matched by a few cases only."""
    data = Dataset()
    shop = process("shop", **{"host.name": "shop-1", "deployment.env": "prod"})
    shop_canary = process("shop", **{"host.name": "shop-2", "deployment.env": "canary"})
    pay = process("payments", **{"host.name": "pay-1"})
    ledger = process("ledger")
    special = process("special")
    scoped = Scope("io.contract.http", "2.4.1", {"scope.attr": "from-scope"})

    # 100-103: one trace per span kind and operation, at increasing start times.
    data.add(make_span(100, 1, shop, name="GET /cart", kind=SpanKind.SERVER, start_ms=_mins(1)))
    data.add(make_span(101, 1, shop, name="GET /cart", kind=SpanKind.CLIENT, start_ms=_mins(3)))
    data.add(make_span(102, 1, shop, name="publish", kind=SpanKind.PRODUCER, start_ms=_mins(5)))
    data.add(make_span(103, 1, shop, name="consume", kind=SpanKind.CONSUMER, start_ms=_mins(7)))

    # 110: shop calls payments calls ledger; tags in every place a tag can live.
    data.add(
        make_span(
            110,
            1,
            shop_canary,
            name="POST /checkout",
            start_ms=_mins(T_MID),
            duration_ms=300,
            attributes={"http.status_code": 200, "user.id": "u-42"},
        ),
        make_span(
            110,
            2,
            pay,
            parent=1,
            name="charge",
            kind=SpanKind.CLIENT,
            start_ms=_mins(T_MID) + 10,
            duration_ms=120,
            attributes={"amount": 12.75, "retry": False},
            events=[event({"exception.type": "Timeout", "attempt": 2}, name="exception")],
            links=[Link(bytes(15) + b"\x01", bytes(7) + b"\x01", "", {"link.reason": "batched"})],
            status=StatusCode.ERROR,
        ),
        make_span(
            110,
            3,
            ledger,
            parent=2,
            name="INSERT entries",
            kind=SpanKind.CLIENT,
            start_ms=_mins(T_MID) + 20,
            duration_ms=40,
            attributes={"db.system": "postgresql"},
            scope=scoped,
        ),
    )
    # 111: like 110 but healthy and on the prod host.
    data.add(
        make_span(
            111,
            1,
            shop,
            name="POST /checkout",
            start_ms=_mins(T_LATE),
            duration_ms=80,
            attributes={"http.status_code": 200, "user.id": "u-7"},
        ),
        make_span(
            111,
            2,
            pay,
            parent=1,
            name="charge",
            kind=SpanKind.CLIENT,
            start_ms=_mins(T_LATE) + 5,
            duration_ms=30,
            attributes={"amount": 3.5},
            status=StatusCode.OK,
        ),
    )
    # 112: errors by attribute only — bool, string "true", and an int 1 that is not an error flag.
    data.add(
        make_span(112, 1, ledger, name="audit", start_ms=_mins(T_EARLY), attributes={"error": True})
    )
    data.add(
        make_span(
            113, 1, ledger, name="audit", start_ms=_mins(T_EARLY) + 1, attributes={"error": "true"}
        )
    )
    data.add(
        make_span(
            114, 1, ledger, name="audit", start_ms=_mins(T_EARLY) + 2, attributes={"error": 1}
        )
    )
    # 115: a literal attribute named like a special key, which must stay searchable.
    data.add(
        make_span(
            115,
            1,
            ledger,
            name="odd",
            start_ms=_mins(T_EARLY) + 3,
            attributes={"span.kind": "weird", "otel.status_code": "maybe"},
        )
    )

    # 120-124: durations 1, 5, 10, 50, 500 ms.
    for n, millis in zip(range(120, 125), (1, 5, 10, 50, 500), strict=True):
        data.add(make_span(n, 1, pay, name="timed", start_ms=_mins(30) + n, duration_ms=millis))

    # 150+: special values, each trace with its value and a near-miss trace (n + 50).
    for i, (label, value) in enumerate(SPECIAL_VALUES.items()):
        data.add(
            make_span(
                150 + i,
                1,
                special,
                name=label,
                attributes={"odd.value": value},
                start_ms=_mins(45) + i,
            )
        )
        data.add(
            make_span(
                200 + i,
                1,
                special,
                name=label,
                attributes={"odd.value": SPECIAL_NEAR_MISS[label]},
                start_ms=_mins(45) + i,
            )
        )
    # Keys with special characters, too.
    data.add(
        make_span(
            190,
            1,
            special,
            name="keys",
            start_ms=_mins(50),
            attributes={"weird key=%_*": "v", "ключ": "значение"},
        )
    )
    return data


def _q(**filters: object) -> TraceQuery:
    return TraceQuery(**filters)  # type: ignore[arg-type]


def cases() -> list[Case]:
    from tests.contract.traces import BASE_NS

    def at(minutes: float) -> int:
        return BASE_NS + int(minutes * MINUTE)

    table = [
        Case("service", _q(service="shop"), (111, 110, 103, 102, 101, 100), ordered=True),
        Case("service, limit 2", _q(service="shop", limit=2), (111, 110), ordered=True),
        Case("service, limit 0", _q(service="shop", limit=0), ()),
        Case(
            "service, limit above matches",
            _q(service="payments", limit=1000),
            (111, 110, 120, 121, 122, 123, 124),
        ),
        Case(
            "service of a child span returns the whole trace",
            _q(service="ledger"),
            (110, 112, 113, 114, 115),
        ),
        Case("unknown service", _q(service="nope"), ()),
        Case("operation", _q(service="shop", operation="GET /cart"), (101, 100), ordered=True),
        Case("operation of another service", _q(service="shop", operation="charge"), ()),
        Case("span kind", _q(service="shop", span_kind=SpanKind.CLIENT), (101,)),
        Case(
            "operation and kind",
            _q(service="shop", operation="GET /cart", span_kind=SpanKind.SERVER),
            (100,),
        ),
        Case("producer kind", _q(service="shop", span_kind=SpanKind.PRODUCER), (102,)),
        Case("span tag int", _q(service="shop", tags={"http.status_code": "200"}), (111, 110)),
        Case("span tag string", _q(service="shop", tags={"user.id": "u-42"}), (110,)),
        Case("span tag double", _q(service="payments", tags={"amount": "12.75"}), (110,)),
        Case("span tag bool false", _q(service="payments", tags={"retry": "false"}), (110,)),
        Case("event tag", _q(service="payments", tags={"exception.type": "Timeout"}), (110,)),
        Case("event tag int", _q(service="payments", tags={"attempt": "2"}), (110,)),
        Case("link tag", _q(service="payments", tags={"link.reason": "batched"}), (110,)),
        Case("resource tag", _q(service="shop", tags={"deployment.env": "canary"}), (110,)),
        Case(
            "resource. prefix",
            _q(service="shop", tags={"resource.host.name": "shop-1"}),
            (100, 101, 102, 103, 111),
        ),
        Case(
            "resource. prefix ignores span attributes",
            _q(service="shop", tags={"resource.user.id": "u-42"}),
            (),
        ),
        Case("scope attribute", _q(service="ledger", tags={"scope.attr": "from-scope"}), (110,)),
        Case("scope.name", _q(service="ledger", tags={"scope.name": "io.contract.http"}), (110,)),
        Case(
            "otel.scope.version", _q(service="ledger", tags={"otel.scope.version": "2.4.1"}), (110,)
        ),
        Case("tag value wrong", _q(service="shop", tags={"user.id": "u-4"}), ()),
        Case("tag key absent", _q(service="shop", tags={"no.such.key": "x"}), ()),
        Case(
            "tag and operation on one span",
            _q(service="payments", operation="charge", tags={"amount": "3.5"}),
            (111,),
        ),
        Case(
            "tag and resource on one span",
            _q(service="shop", tags={"deployment.env": "canary", "user.id": "u-7"}),
            (),
        ),
        Case(
            "error=true: status or attribute",
            _q(tags={"error": "true"}),
            (110, 112, 113),
            needs=("search_without_service",),
        ),
        Case(
            "error=true within a service", _q(service="ledger", tags={"error": "true"}), (112, 113)
        ),
        Case("error=TRUE spelled otherwise", _q(service="ledger", tags={"error": "1"}), (112, 113)),
        Case("error=false", _q(service="ledger", tags={"error": "false"}), (110, 114, 115)),
        Case("span.kind tag", _q(service="shop", tags={"span.kind": "producer"}), (102,)),
        Case(
            "span.kind literal attribute", _q(service="ledger", tags={"span.kind": "weird"}), (115,)
        ),
        Case(
            "otel.status_code", _q(service="payments", tags={"otel.status_code": "ERROR"}), (110,)
        ),
        Case(
            "otel.status_code OK", _q(service="payments", tags={"otel.status_code": "ok"}), (111,)
        ),
        Case(
            "otel.status_code literal",
            _q(service="ledger", tags={"otel.status_code": "maybe"}),
            (115,),
        ),
        Case(
            "duration min",
            _q(service="payments", operation="timed", duration_min_ns=50 * MS),
            (123, 124),
        ),
        Case(
            "duration max",
            _q(service="payments", operation="timed", duration_max_ns=5 * MS),
            (120, 121),
        ),
        Case(
            "duration range inclusive",
            _q(
                service="payments",
                operation="timed",
                duration_min_ns=5 * MS,
                duration_max_ns=10 * MS,
            ),
            (121, 122),
        ),
        Case("duration range empty", _q(service="payments", duration_min_ns=501 * MS), ()),
        Case(
            "time window",
            _q(service="shop", start_min_ns=at(2), start_max_ns=at(6)),
            (102, 101),
            ordered=True,
        ),
        Case(
            "time window is on span start",
            _q(service="payments", start_min_ns=at(T_MID), start_max_ns=at(T_MID + 1)),
            (110,),
        ),
        Case("time window open end", _q(service="shop", start_min_ns=at(T_MID)), (111, 110)),
        Case("time window open start", _q(service="shop", start_max_ns=at(2)), (100,)),
        Case(
            "time window and duration",
            _q(service="payments", start_min_ns=at(29), duration_min_ns=10 * MS),
            (111, 122, 123, 124),
        ),
        Case(
            "key with special characters",
            _q(service="special", tags={"weird key=%_*": "v"}),
            (190,),
        ),
        Case("non-ASCII key", _q(service="special", tags={"ключ": "значение"}), (190,)),
        Case(
            "search without service",
            _q(tags={"user.id": "u-7"}),
            (111,),
            needs=("search_without_service",),
        ),
        Case(
            "search without service, operation only",
            _q(operation="INSERT entries"),
            (110,),
            needs=("search_without_service",),
        ),
    ]
    for i, (label, value) in enumerate(SPECIAL_VALUES.items()):
        table.append(
            Case(
                f"special value: {label}",
                _q(service="special", tags={"odd.value": value}),
                (150 + i,),
                literal=True,
            )
        )
    return table
