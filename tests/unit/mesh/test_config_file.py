"""The mesh file loader on valid files: the Chapter 7 hello app, Bookinfo, defaults, durations,
and the round trip YAML -> MeshConfig -> YAML -> the same MeshConfig."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tracemesh.mesh.config_file import (
    dump_mesh,
    format_duration,
    load_mesh,
    parse_duration,
    read_mesh_file,
)
from tracemesh.mesh.mesh_config import Gateway, MeshConfig, Tracing, Workload
from tracemesh.mesh.routes import (
    Abort,
    Delay,
    Destination,
    Fault,
    GatewayRoute,
    RequestMatch,
    Retries,
    RetryOn,
    Route,
    ServiceRoutes,
)
from tracemesh.mesh.string_match import MatchKind, StringMatch

# "Mastering Distributed Tracing", Chapter 7: the gateway sends /sayHello* to hello; hello's
# sidecar sends formatter calls whose user-agent baggage says Netscape to v2, the rest to v1.
HELLO = textwrap.dedent(
    """\
    services:
      - name: hello
        command: [java, -jar, hello.jar]
        port: 8080
      - name: formatter
        command: java -jar formatter.jar
        port: 8081
        labels: {version: v1}
      - name: formatter
        command: java -jar formatter.jar
        port: 8081
        labels: {version: v2}
        env: {professor: "true"}
    routes:
      formatter:
        subsets:
          v1: {labels: {version: v1}}
          v2: {labels: {version: v2}}
        http:
          - name: formatter-netscape
            match:
              - baggage: {user-agent: {regex: ".*Netscape.*"}}
            route: [{service: formatter, subset: v2}]
          - route: [{service: formatter, subset: v1}]
    gateway:
      routes:
        - prefix: /sayHello
          service: hello
    """
)

# Istio's Bookinfo: jason sees reviews v2, everyone else an 80/20 split of v1 and v3; ratings
# calls from jason are delayed 7 s (virtual-service-ratings-test-delay.yaml).
BOOKINFO = textwrap.dedent(
    """\
    services:
      - {name: productpage, command: [python, productpage.py, "9080"], port: 9080}
      - {name: details, command: [ruby, details.rb, "9080"], port: 9080}
      - name: reviews
        command: [java, -jar, reviews.jar]
        port: 9080
        labels: {version: v1}
        env: {ENABLE_RATINGS: "false"}
      - name: reviews
        command: [java, -jar, reviews.jar]
        port: 9080
        labels: {version: v2}
        env: {ENABLE_RATINGS: "true"}
      - name: reviews
        command: [java, -jar, reviews.jar]
        port: 9080
        labels: {version: v3}
        replicas: 2
        env: {ENABLE_RATINGS: "true", STAR_COLOR: red}
      - {name: ratings, command: [node, ratings.js, "9080"], port: 9080, labels: {version: v1}}
    routes:
      reviews:
        subsets:
          v1: {labels: {version: v1}}
          v2: {labels: {version: v2}}
          v3: {labels: {version: v3}}
        http:
          - name: reviews-jason
            match:
              - headers: {end-user: {exact: jason}}
            route: [{service: reviews, subset: v2}]
          - route:
              - {service: reviews, subset: v1, weight: 80}
              - {service: reviews, subset: v3, weight: 20}
            timeout: 0.5s
            retries: {attempts: 3, perTryTimeout: 200ms, retryOn: "gateway-error,connect-failure"}
      ratings:
        subsets: {v1: {labels: {version: v1}}}
        http:
          - match: [{headers: {end-user: {exact: jason}}}]
            fault: {delay: {fixedDelay: 7s, percentage: 100}}
            route: [{service: ratings, subset: v1}]
          - route: [{service: ratings, subset: v1}]
    gateway:
      port: 8080
      routes:
        - {prefix: /productpage, service: productpage, name: productpage}
        - {prefix: /static, service: productpage}
        - {prefix: /login, service: productpage}
        - {prefix: /logout, service: productpage}
        - {prefix: /api/v1/products, service: productpage}
    tracing:
      sampling: 1
      collector: jaeger-collector:4317
      propagation: [b3, w3c]
    """
)


def test_hello_example_loads_as_written() -> None:
    config = load_mesh(HELLO)
    assert [(w.name, dict(w.labels)) for w in config.services] == [
        ("hello", {}),
        ("formatter", {"version": "v1"}),
        ("formatter", {"version": "v2"}),
    ]
    assert config.services[1].command == ("java", "-jar", "formatter.jar")  # split like a shell
    assert config.services[2].env == {"professor": "true"}
    netscape = StringMatch(MatchKind.REGEX, ".*Netscape.*")
    assert config.routes == {
        "formatter": ServiceRoutes(
            subsets={"v1": {"version": "v1"}, "v2": {"version": "v2"}},
            http=(
                Route(
                    route=(Destination("formatter", "v2"),),
                    name="formatter-netscape",
                    match=(RequestMatch(baggage={"user-agent": netscape}),),
                ),
                Route(route=(Destination("formatter", "v1"),)),
            ),
        )
    }
    assert config.gateway == Gateway(8080, (GatewayRoute("hello", "/sayHello"),))
    assert config.tracing == Tracing()


def test_bookinfo_loads_with_split_timeout_retries_and_fault() -> None:
    config = load_mesh(BOOKINFO)
    assert len(config.services) == 6
    assert config.services[4].replicas == 2
    jason, split = config.routes["reviews"].http
    assert jason.match == (
        RequestMatch(headers={"end-user": StringMatch(MatchKind.EXACT, "jason")}),
    )
    assert split.route == (Destination("reviews", "v1", 80), Destination("reviews", "v3", 20))
    assert split.timeout == 0.5
    assert split.retries == Retries(
        3, 0.2, frozenset({RetryOn.GATEWAY_ERROR, RetryOn.CONNECT_FAILURE}), frozenset()
    )
    delayed = config.routes["ratings"].http[0]
    assert delayed.fault == Fault(delay=Delay(7.0, 100.0))
    assert config.gateway is not None
    assert [r.prefix for r in config.gateway.routes][:2] == ["/productpage", "/static"]
    assert config.gateway.routes[0].name == "productpage"
    assert config.tracing == Tracing(1.0, "jaeger-collector:4317", ("b3", "w3c"))


def test_round_trip_of_the_examples() -> None:
    for text in (HELLO, BOOKINFO):
        config = load_mesh(text)
        dumped = dump_mesh(config)
        assert load_mesh(dumped) == config
        assert dump_mesh(load_mesh(dumped)) == dumped


def test_empty_file_and_empty_sections_are_an_empty_mesh() -> None:
    assert load_mesh("") == MeshConfig()
    assert load_mesh("# nothing yet\n") == MeshConfig()
    assert load_mesh("services:\nroutes:\n") == MeshConfig()
    assert dump_mesh(MeshConfig()) == ""


def test_defaults() -> None:
    config = load_mesh(
        "routes:\n  a:\n    http:\n      - route: [{service: a}]\ngateway:\n  routes:\n"
        "    - service: a\ntracing: {}\n"
    )
    route = config.routes["a"].http[0]
    assert route == Route((Destination("a", None, 100),))
    assert config.gateway == Gateway(8080, (GatewayRoute("a", "/", ("*",)),))
    assert config.tracing.sampling == 100.0
    assert config.tracing.collector == "127.0.0.1:4317"
    assert config.tracing.propagation == ("b3", "w3c", "jaeger", "baggage")


def test_retries_without_retry_on_keep_istios_conditions() -> None:
    config = load_mesh(
        "routes:\n  a:\n    http:\n      - route: [{service: a}]\n        retries: {attempts: 4}\n"
    )
    retries = config.routes["a"].http[0].retries
    assert retries == Retries(4, None, frozenset({RetryOn.CONNECT_FAILURE}), frozenset({503}))


def test_retry_on_as_list_with_status_codes() -> None:
    config = load_mesh(
        "routes:\n  a:\n    http:\n      - route: [{service: a}]\n"
        "        retries: {attempts: 1, retryOn: [5xx, reset, 429]}\n"
    )
    retries = config.routes["a"].http[0].retries
    assert retries is not None
    assert retries.retry_on == {RetryOn.FIVE_XX, RetryOn.RESET}
    assert retries.status_codes == {429}


def test_header_names_are_lower_cased_and_empty_match_is_presence() -> None:
    config = load_mesh(
        "routes:\n  a:\n    http:\n"
        "      - match: [{headers: {X-Canary: {}}, baggage: {Tenant: {prefix: acme}}}]\n"
        "        route: [{service: a}]\n"
    )
    (match,) = config.routes["a"].http[0].match
    assert match.headers == {"x-canary": StringMatch(MatchKind.PRESENT)}
    assert match.baggage == {"Tenant": StringMatch(MatchKind.PREFIX, "acme")}  # case kept


def test_gateway_hosts_and_rewrite() -> None:
    config = load_mesh(
        "gateway:\n  port: 80\n  routes:\n"
        "    - {hosts: [Shop.Example.com, '*.example.org'], prefix: /api/, rewrite: /,"
        " service: shop, name: shop-api}\n"
    )
    assert config.gateway == Gateway(
        80, (GatewayRoute("shop", "/api/", ("shop.example.com", "*.example.org"), "/", "shop-api"),)
    )


def test_fault_abort_with_percentage() -> None:
    config = load_mesh(
        "routes:\n  a:\n    http:\n      - route: [{service: a}]\n"
        "        fault: {abort: {httpStatus: 503, percentage: 12.5}}\n"
    )
    assert config.routes["a"].http[0].fault == Fault(abort=Abort(503, 12.5))


def test_null_values_of_optional_keys_count_as_absent() -> None:
    config = load_mesh(
        "routes:\n  a:\n    http:\n      - route: [{service: a}]\n        timeout:\n"
    )
    assert config.routes["a"].http[0].timeout is None


def test_read_mesh_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(HELLO)
    assert read_mesh_file(path) == load_mesh(HELLO)


def test_durations() -> None:
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2m") == 120.0
    assert parse_duration("1h") == 3600.0
    assert format_duration(0.25) == "250ms"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(7.0) == "7s"
    assert format_duration(1e-9) == "0.000000001s"  # never an exponent the parser refuses
    for bad in ("10", "1.5sec", "-1s", "0s", "1e3s", "s", "1 s", "9000h", ""):
        try:
            parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} parsed")


@given(
    st.decimals(min_value=0, max_value=10**5, places=6, allow_nan=False).filter(lambda d: d > 0),
    st.sampled_from(["ms", "s", "m"]),
)
def test_durations_round_trip(amount: object, unit: str) -> None:
    seconds = parse_duration(f"{amount:f}{unit}")
    assert parse_duration(format_duration(seconds)) == seconds


# --- the round trip on generated configurations

_names = st.sampled_from(["a", "end-user", "x.y", "v1-2", "yes", "null", "0x10"])
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_match = st.one_of(
    st.builds(StringMatch, st.just(MatchKind.EXACT), _text),
    st.builds(StringMatch, st.just(MatchKind.PREFIX), _text),
    st.builds(StringMatch, st.just(MatchKind.REGEX), _text.map(lambda t: f".*{re.escape(t)}.*")),
)
_millis = st.integers(1, 10**7).map(lambda ms: ms / 1000)


@st.composite
def _route(draw: st.DrawFn) -> Route:
    weights = draw(st.sampled_from([(100,), (50, 50), (80, 20), (0, 30, 70), (10, 20, 30, 40)]))
    route = tuple(Destination("svc", draw(st.sampled_from(["v1", "v2"])), w) for w in weights)
    match = draw(
        st.lists(
            st.builds(
                RequestMatch,
                uri=st.none() | _match,
                method=st.none() | _match,
                headers=st.dictionaries(_names, _match | st.just(StringMatch(MatchKind.PRESENT))),
                baggage=st.dictionaries(_text.filter(bool), _match, max_size=2),
            ),
            max_size=3,
        )
    )
    fault = draw(
        st.none()
        | st.builds(
            Fault,
            delay=st.none() | st.builds(Delay, _millis, st.floats(0, 100)),
            abort=st.builds(Abort, st.integers(200, 599), st.floats(0, 100)),
        )
    )
    retries = timeout = None
    if fault is None:
        timeout = draw(st.none() | _millis)
        retries = draw(
            st.none()
            | st.builds(
                Retries,
                st.integers(0, 10),
                st.none() | _millis,
                st.frozensets(st.sampled_from(list(RetryOn)), min_size=1),
                st.frozensets(st.integers(100, 599)),
            )
        )
    name = draw(st.none() | st.sampled_from(["r", "reviews:9080/*", "no", "a b", "~", "[x]"]))
    return Route(route, name, tuple(match), timeout, retries, fault)


@settings(max_examples=50)  # each example is a whole file; generation dominates
@given(
    routes=st.lists(_route(), min_size=1, max_size=3),
    tracing=st.builds(
        Tracing,
        st.floats(0, 100),
        st.just("collector:4317"),
        st.permutations(["b3", "w3c", "jaeger", "baggage"]).map(tuple),
    ),
    env=st.dictionaries(_names, _text, max_size=3),
)
def test_round_trip_of_generated_meshes(
    routes: list[Route], tracing: Tracing, env: dict[str, str]
) -> None:
    config = MeshConfig(
        services=(
            Workload("svc", ("run", "--flag=yes", "null", "1.0"), 80, {"version": "v1"}, 2, env),
            Workload("svc", ("run",), 80, {"version": "v2"}),
        ),
        routes={
            "svc": ServiceRoutes({"v1": {"version": "v1"}, "v2": {"version": "v2"}}, tuple(routes))
        },
        tracing=tracing,
    )
    assert load_mesh(dump_mesh(config)) == config


def test_gateway_upstream_span_defaults_on_and_round_trips_off() -> None:
    assert load_mesh("gateway:\n  port: 8080\n").gateway == Gateway(8080, (), True)
    off = load_mesh("gateway:\n  upstream_span: false\n")
    assert off.gateway is not None and off.gateway.upstream_span is False
    assert load_mesh(dump_mesh(off)) == off
