"""Route selection: each match kind on each request part, first match wins, weighted picks that
converge to their weights, the Chapter 7 baggage example, Bookinfo, and the gateway's routes."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.mesh.test_config_file import BOOKINFO, HELLO
from tracemesh.mesh.config_file import load_mesh
from tracemesh.mesh.mesh_config import Gateway, MeshConfig, Workload
from tracemesh.mesh.policy import MESH_DEFAULT_RETRIES, RetryPolicy
from tracemesh.mesh.routes import (
    Destination,
    GatewayRoute,
    RequestMatch,
    Route,
    ServiceRoutes,
)
from tracemesh.mesh.routing import Router, Selection
from tracemesh.mesh.string_match import MAX_REGEX_LENGTH, MatchKind, StringMatch, compile_regex

EXACT, PREFIX, REGEX, PRESENT = (
    MatchKind.EXACT,
    MatchKind.PREFIX,
    MatchKind.REGEX,
    MatchKind.PRESENT,
)


def never() -> float:
    raise AssertionError("no draw expected")


def router_for(*routes: Route) -> Router:
    return Router(MeshConfig(routes={"svc": ServiceRoutes(http=routes)}))


def choose(
    router: Router,
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    baggage: dict[str, str] | None = None,
    service: str = "svc",
) -> str | None:
    """The matched route's name, or None when nothing matched."""
    selection = router.select(service, method, path, headers or {}, baggage or {}, never)
    return None if selection is None else selection.route.name


def only(match: RequestMatch) -> Router:
    """A router whose one route `hit` applies `match`; anything else has no route."""
    return router_for(Route((Destination("svc"),), "hit", (match,)))


# --- string matches


def test_string_match_kinds() -> None:
    assert StringMatch(EXACT, "GET").matches("GET")
    assert not StringMatch(EXACT, "GET").matches("get")
    assert StringMatch(PREFIX, "/api").matches("/api/v1")
    assert not StringMatch(PREFIX, "/api").matches("/ap")
    assert StringMatch(REGEX, ".*Netscape.*").matches("Mozilla/4.0 Netscape")
    assert not StringMatch(REGEX, "Netscape").matches("Mozilla Netscape")  # full match, as RE2
    assert StringMatch(PRESENT).matches("")
    for kind in (EXACT, PREFIX, REGEX, PRESENT):
        assert not StringMatch(kind, "").matches(None)  # an absent value fits no condition


def test_regexes_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match=r"bad regex '\[': unterminated character set"):
        StringMatch(REGEX, "[")
    with pytest.raises(ValueError, match=f"the limit is {MAX_REGEX_LENGTH}"):
        compile_regex("a" * (MAX_REGEX_LENGTH + 1))
    with pytest.raises(ValueError, match="bad regex"):
        compile_regex("(" * 500 + ")" * 500)  # nested too deeply or too many groups: refused


_line = st.text(st.characters(blacklist_characters="\n"))  # `.` skips newlines, as in RE2


@given(_line, _line)
def test_match_kinds_agree_with_their_definitions(value: str, text: str) -> None:
    assert StringMatch(EXACT, value).matches(text) == (text == value)
    assert StringMatch(PREFIX, value).matches(text) == text.startswith(value)
    assert StringMatch(REGEX, re.escape(value)).matches(text) == (text == value)
    assert StringMatch(REGEX, f".*{re.escape(value)}.*").matches(text) == (value in text)


# --- request parts


def test_uri_exact_and_regex_ignore_the_query_prefix_sees_it() -> None:
    exact = only(RequestMatch(uri=StringMatch(EXACT, "/productpage")))
    assert choose(exact, path="/productpage") == "hit"
    assert choose(exact, path="/productpage?u=normal") == "hit"
    assert choose(exact, path="/productpage/x") is None
    regex = only(RequestMatch(uri=StringMatch(REGEX, "/reviews/[0-9]+")))
    assert choose(regex, path="/reviews/0?x=1") == "hit"
    assert choose(regex, path="/reviews/x") is None
    prefix = only(RequestMatch(uri=StringMatch(PREFIX, "/sayHello")))
    assert choose(prefix, path="/sayHello2/bob") == "hit"  # Chapter 7: one block covers both
    assert choose(prefix, path="/say") is None
    query = only(RequestMatch(uri=StringMatch(PREFIX, "/search?q=")))
    assert choose(query, path="/search?q=x") == "hit"


def test_method_kinds() -> None:
    assert choose(only(RequestMatch(method=StringMatch(EXACT, "POST"))), "POST") == "hit"
    assert choose(only(RequestMatch(method=StringMatch(EXACT, "POST"))), "GET") is None
    assert choose(only(RequestMatch(method=StringMatch(PREFIX, "P"))), "PUT") == "hit"
    assert choose(only(RequestMatch(method=StringMatch(REGEX, "GET|HEAD"))), "HEAD") == "hit"
    assert choose(only(RequestMatch(method=StringMatch(REGEX, "GET|HEAD"))), "GETX") is None


def test_header_names_are_case_insensitive_values_are_not() -> None:
    router = only(RequestMatch(headers={"end-user": StringMatch(EXACT, "jason")}))
    assert choose(router, headers={"End-User": "jason"}) == "hit"
    assert choose(router, headers={"END-USER": "jason"}) == "hit"
    assert choose(router, headers={"end-user": "Jason"}) is None
    assert choose(router, headers={}) is None
    prefix = only(RequestMatch(headers={"user-agent": StringMatch(PREFIX, "curl/")}))
    assert choose(prefix, headers={"User-Agent": "curl/8.5"}) == "hit"
    regex = only(RequestMatch(headers={"x-tenant": StringMatch(REGEX, "t-[0-9]{3}")}))
    assert choose(regex, headers={"x-tenant": "t-042"}) == "hit"
    assert choose(regex, headers={"x-tenant": "t-0421"}) is None
    present = only(RequestMatch(headers={"x-canary": StringMatch(PRESENT)}))
    assert choose(present, headers={"X-Canary": ""}) == "hit"
    assert choose(present, headers={"x-other": "1"}) is None


def test_baggage_kinds_and_keys_are_case_sensitive() -> None:
    for kind, value, hit, miss in [
        (EXACT, "acme", "acme", "acme2"),
        (PREFIX, "acme", "acme-eu", "ac"),
        (REGEX, "acme|initech", "initech", "acme-initech"),
    ]:
        router = only(RequestMatch(baggage={"tenant": StringMatch(kind, value)}))
        assert choose(router, baggage={"tenant": hit}) == "hit"
        assert choose(router, baggage={"tenant": miss}) is None
        assert choose(router, baggage={"Tenant": hit}) is None
        assert choose(router, headers={"tenant": hit}) is None  # baggage, not headers


def test_conditions_and_within_an_alternative_or_across_them() -> None:
    both = RequestMatch(
        method=StringMatch(EXACT, "GET"), headers={"end-user": StringMatch(EXACT, "jason")}
    )
    router = only(both)
    assert choose(router, "GET", headers={"end-user": "jason"}) == "hit"
    assert choose(router, "POST", headers={"end-user": "jason"}) is None
    assert choose(router, "GET") is None
    either = router_for(
        Route(
            (Destination("svc"),),
            "hit",
            (
                RequestMatch(method=StringMatch(EXACT, "POST")),
                RequestMatch(uri=StringMatch(PREFIX, "/a")),
            ),
        )
    )
    assert choose(either, "POST", "/z") == "hit"
    assert choose(either, "GET", "/a") == "hit"
    assert choose(either, "GET", "/z") is None


def test_first_matching_route_wins_and_a_route_without_match_takes_the_rest() -> None:
    router = router_for(
        Route((Destination("svc"),), "api", (RequestMatch(uri=StringMatch(PREFIX, "/api")),)),
        Route((Destination("svc"),), "api-v1", (RequestMatch(uri=StringMatch(PREFIX, "/api/v1")),)),
        Route((Destination("svc"),), "rest"),
        Route((Destination("svc"),), "never"),
    )
    assert choose(router, path="/api/v1/x") == "api"  # the earlier, broader route wins
    assert choose(router, path="/other") == "rest"


def test_unknown_service_or_no_matching_route_is_no_route() -> None:
    router = only(RequestMatch(uri=StringMatch(EXACT, "/x")))
    assert router.select("nope", "GET", "/x", {}, {}, never) is None
    assert router.select("svc", "GET", "/y", {}, {}, never) is None


def test_a_service_without_routes_goes_to_all_its_instances() -> None:
    config = MeshConfig(
        services=(Workload("details", ("run",), 9080),),
        routes={"reviews": ServiceRoutes(subsets={"v1": {"version": "v1"}})},
    )
    router = Router(config)
    for service in ("details", "reviews"):
        selection = router.select(service, "GET", "/", {}, {}, never)
        assert selection is not None
        assert selection.destination == Destination(service)
        assert selection.labels == {}
        assert selection.route.name is None
        assert selection.operation(9080) == f"{service}:9080/*"  # Istio's default span name
        assert selection.policy == RetryPolicy(MESH_DEFAULT_RETRIES)


def test_selection_names_the_span_after_the_route_and_resolves_subset_labels() -> None:
    config = load_mesh(HELLO)
    selection = Router(config).select(
        "formatter", "GET", "/", {}, {"user-agent": "Netscape"}, never
    )
    assert selection is not None
    assert selection.operation(8081) == "formatter-netscape"
    assert selection.labels == {"version": "v2"}
    assert selection.policy == RetryPolicy.for_route(selection.route)


# --- the examples


def test_chapter_7_baggage_routes_netscape_to_formatter_v2_others_to_v1() -> None:
    router = Router(load_mesh(HELLO))

    def version(baggage: dict[str, str]) -> str | None:
        selection = router.select(
            "formatter", "GET", "/formatGreeting?name=Bender", {}, baggage, never
        )
        assert selection is not None
        return selection.destination.subset

    assert version({"user-agent": "Mozilla/4.08 [en] (Win98; I) Netscape"}) == "v2"
    assert version({"user-agent": "Netscape"}) == "v2"
    assert version({"user-agent": "curl/8.5.0"}) == "v1"
    assert version({"user-agent": "netscape"}) == "v1"  # regexes are case-sensitive, as RE2's
    assert version({}) == "v1"


def test_bookinfo_jason_sees_v2_and_others_split_80_20() -> None:
    router = Router(load_mesh(BOOKINFO))
    jason = router.select("reviews", "GET", "/reviews/0", {"end-user": "jason"}, {}, never)
    assert jason is not None
    assert (jason.destination.subset, jason.route.name) == ("v2", "reviews-jason")
    rand = random.Random(7).random
    picks = Counter(
        selection.destination.subset
        for selection in (
            router.select("reviews", "GET", "/reviews/0", {}, {}, rand) for _ in range(10_000)
        )
        if selection is not None
    )
    assert picks.keys() == {"v1", "v3"}
    assert abs(picks["v1"] - 8000) < 200  # ~5 standard deviations


# --- weights


def weighted(*weights: int) -> Router:
    route = Route(tuple(Destination("svc", f"v{i}", w) for i, w in enumerate(weights)))
    return router_for(route)


def pick(router: Router, rand: float) -> str | None:
    selection = router.select("svc", "GET", "/", {}, {}, lambda: rand)
    assert isinstance(selection, Selection)
    return selection.destination.subset


def test_weighted_picks_converge_to_the_weights() -> None:
    weights = (50, 30, 15, 5)
    router = weighted(*weights)
    rand = random.Random(20260101).random
    draws = 100_000
    counts = Counter(
        s.destination.subset
        for s in (router.select("svc", "GET", "/", {}, {}, rand) for _ in range(draws))
        if s is not None
    )
    expected = [draws * w / 100 for w in weights]
    chi_square = sum((counts[f"v{i}"] - e) ** 2 / e for i, e in enumerate(expected))
    assert chi_square < 16.27  # 3 degrees of freedom, p = 0.001


def test_an_even_grid_of_draws_gives_exactly_the_weights() -> None:
    router = weighted(20, 0, 45, 35)
    grid = 10_000
    counts = Counter(pick(router, (i + 0.5) / grid) for i in range(grid))
    assert counts == {"v0": 2000, "v2": 4500, "v3": 3500}


@st.composite
def percentages(draw: st.DrawFn) -> list[int]:
    """2 to 5 weights summing to 100, zeros included."""
    bounds = [0, *sorted(draw(st.lists(st.integers(0, 100), min_size=1, max_size=4))), 100]
    return [high - low for low, high in itertools.pairwise(bounds)]


@given(percentages(), st.floats(0, 1, exclude_max=True))
def test_a_zero_weight_destination_is_never_picked(weights: list[int], rand: float) -> None:
    chosen = pick(weighted(*weights), rand)
    assert chosen is not None
    assert weights[int(chosen[1:])] > 0


def test_a_single_destination_needs_no_draw() -> None:
    assert pick(router_for(Route((Destination("svc", "v1"),))), 0.0) == "v1"
    selection = router_for(Route((Destination("svc", "v1"),))).select(
        "svc", "GET", "/", {}, {}, never
    )
    assert selection is not None


# --- the ingress gateway


def gateway(*routes: GatewayRoute) -> Router:
    return Router(MeshConfig(gateway=Gateway(8080, routes)))


def test_gateway_matches_host_exact_wildcard_and_any() -> None:
    router = gateway(
        GatewayRoute("shop", "/", ("shop.example.com",)),
        GatewayRoute("blog", "/", ("*.example.org",)),
        GatewayRoute("default", "/", ("*",)),
    )

    def service(host: str) -> str | None:
        selection = router.select_ingress(host, "/x")
        return None if selection is None else selection.service

    assert service("shop.example.com") == "shop"
    assert service("SHOP.Example.com:8080") == "shop"  # case and port do not matter
    assert service("www.example.org") == "blog"
    assert service("a.b.example.org") == "blog"
    assert service("example.org") == "default"  # `*.` needs at least one more label
    assert service("[::1]:8080") == "default"
    assert service("") == "default"


def test_gateway_prefix_order_and_rewrite() -> None:
    router = gateway(
        GatewayRoute("hello", "/sayHello"),
        GatewayRoute("api", "/api/", rewrite="/"),
        GatewayRoute("static", "/static", rewrite="/assets"),
    )
    hello = router.select_ingress("gw", "/sayHello2/bob")
    assert hello is not None and (hello.service, hello.path) == ("hello", "/sayHello2/bob")
    api = router.select_ingress("gw", "/api/v1/items?x=1")
    assert api is not None and (api.service, api.path) == ("api", "/v1/items?x=1")
    static = router.select_ingress("gw", "/static/app.js")
    assert static is not None and static.path == "/assets/app.js"
    assert router.select_ingress("gw", "/other") is None


def test_gateway_from_a_file_and_without_a_gateway() -> None:
    router = Router(load_mesh(BOOKINFO))
    page = router.select_ingress("localhost", "/productpage?u=normal")
    assert page is not None and page.route.name == "productpage"
    assert router.select_ingress("localhost", "/admin") is None
    assert Router(MeshConfig()).select_ingress("localhost", "/") is None


def test_chapter_7_gateway_sends_both_hello_endpoints_to_hello() -> None:
    router = Router(load_mesh(HELLO))
    for path in ("/sayHello/Bender", "/sayHello2/Bender"):
        selection = router.select_ingress("192.168.99.100:31380", path)
        assert selection is not None and selection.service == "hello"


def test_a_file_without_services_routes_to_every_service_it_names() -> None:
    config = load_mesh(
        "routes:\n  a:\n    http:\n      - route: [{service: b}]\n"
        "gateway:\n  routes:\n    - {prefix: /, service: c}\n"
    )
    router = Router(config)
    for service in ("a", "b", "c"):
        assert router.select(service, "GET", "/", {}, {}, never) is not None
    assert router.select("d", "GET", "/", {}, {}, never) is None
