"""Every mistake in a mesh file is reported at its line and column with what is wrong, and hostile
YAML (huge, deep, billion laughs, tags) is refused quickly instead of hanging or crashing."""

from __future__ import annotations

import textwrap
import time

import pytest
import yaml

from tracemesh.mesh.config_file import ConfigError, load_mesh
from tracemesh.mesh.yaml_nodes import MAX_BYTES, MAX_DEPTH, MAX_NODES


def error(text: str | bytes) -> str:
    with pytest.raises(ConfigError) as caught:
        load_mesh(textwrap.dedent(text) if isinstance(text, str) else text)
    return str(caught.value)


BAD_FILES = [
    (
        "gateway:\n  upstream_span: sometimes\n",
        "mesh.yaml:2:18: 'upstream_span' must be true or false, got a string 'sometimes'",
    ),
    (
        """\
        routes:
          reviews:
            subsets:
              v1: {labels: {version: v1}}
              v2: {labels: {version: v2}}
            http:
              - route:
                  - {service: reviews, subset: v1, weight: 60}
                  - {service: reviews, subset: v2, weight: 30}
        """,
        "mesh.yaml:8:11: route weights sum to 90, must be 100",
    ),
    (
        """\
        routes:
          reviews:
            http:
              - route:
                  - service: reviews
                    wieght: 100
        """,
        "mesh.yaml:6:13: unknown key 'wieght'; did you mean 'weight'?",
    ),
    ("servics: []\n", "mesh.yaml:1:1: unknown key 'servics'; did you mean 'services'?"),
    (
        "tracing: {size: 3}\n",
        "mesh.yaml:1:11: unknown key 'size'; expected one of: sampling, collector, propagation",
    ),
    (
        """\
        services:
          - name: shop
            command: [shop]
            port: http
        """,
        "mesh.yaml:4:11: 'port' must be an integer, got a string 'http'",
    ),
    (
        "services:\n  - {name: shop, command: [shop], port: 70000}\n",
        "mesh.yaml:2:41: 'port' must be from 1 to 65535, got 70000",
    ),
    (
        """\
        routes:
          a:
            http:
              - route: [{service: a}]
                timeout: 10
        """,
        "mesh.yaml:5:18: 'timeout' must be a duration like 1.5s or 250ms, got an integer '10'",
    ),
    (
        """\
        routes:
          a:
            http:
              - route: [{service: a}]
                retries: {attempts: 2, perTryTimeout: 1.5sec}
        """,
        "mesh.yaml:5:47: 'perTryTimeout' must be a duration like 1.5s or 250ms, got '1.5sec'",
    ),
    (
        """\
        routes:
          a:
            http:
              - match: [{uri: {regex: "(abc"}}]
                route: [{service: a}]
        """,
        "mesh.yaml:4:31: bad regex '(abc': missing ), unterminated subpattern at position 0",
    ),
    (
        "tracing:\n  sampling: 1\n  sampling: 2\n",
        "mesh.yaml:3:3: duplicate key 'sampling' (first at line 2)",
    ),
    (
        "services:\n  - name: a\n    port: 80\n",
        "mesh.yaml:2:5: a service is missing the key 'command'",
    ),
    (
        """\
        routes:
          a:
            subsets: {v1: {labels: {version: v1}}, v2: {labels: {version: v2}}}
            http:
              - route: [{service: a, subset: v3}]
        """,
        "mesh.yaml:5:38: unknown subset 'v3' of service 'a'; expected one of: v1, v2",
    ),
    (
        "routes:\n  a:\n    http:\n      - route: [{service: a, subset: v1}]\n",
        "mesh.yaml:4:38: unknown subset 'v1' of service 'a'; it defines no subsets",
    ),
    (
        """\
        services:
          - {name: reviews, command: run, port: 9080}
        routes:
          reviews:
            http:
              - route: [{service: reviws}]
        """,
        "mesh.yaml:6:27: unknown service 'reviws'; did you mean 'reviews'?",
    ),
    (
        """\
        services:
          - {name: reviews, command: run, port: 9080}
        gateway:
          routes:
            - {prefix: /, service: ratings}
        """,
        "mesh.yaml:5:28: unknown service 'ratings'; expected one of: reviews",
    ),
    (
        "services:\n  - {name: a, command: x, port: 1, labels: {version: 2}}\n",
        "mesh.yaml:2:54: 'labels' value 'version' must be a string, got an integer '2'"
        ' (quote it: "2")',
    ),
    (
        """\
        routes:
          a:
            http:
              - route: [{service: a}]
                retries: {attempts: 2, retryOn: "5xx,retriable-4xx"}
        """,
        "mesh.yaml:5:41: unsupported retryOn 'retriable-4xx'; expected one of: 5xx,"
        " gateway-error, connect-failure, reset, a status code",
    ),
    (
        """\
        routes:
          a:
            http:
              - route: [{service: a}]
                retries: {attempts: 2, retryOn: [5xx, conect-failure]}
        """,
        "mesh.yaml:5:47: unsupported retryOn 'conect-failure'; did you mean 'connect-failure'?",
    ),
    (
        """\
        routes:
          a:
            http:
              - route: [{service: a}]
                retries: {attempts: 11}
        """,
        "mesh.yaml:5:29: 'attempts' must be from 0 to 10, got 11",
    ),
    (
        """\
        routes:
          a:
            http:
              - route: [{service: a}]
                retries: {attempts: 2}
                fault: {abort: {httpStatus: 500}}
        """,
        "mesh.yaml:6:16: a route with a fault gets no timeout or retries in Istio;"
        " remove 'timeout' and 'retries', or the fault",
    ),
    (
        """\
        routes:
          a:
            http:
              - route: [{service: a}]
                fault: {abort: {httpStatus: 500, percentage: 101}}
        """,
        "mesh.yaml:5:54: 'percentage' must be from 0 to 100, got 101",
    ),
    (
        """\
        routes:
          a:
            http:
              - match: [{headers: {end-user: {exact: jason, prefix: j}}}]
                route: [{service: a}]
        """,
        "mesh.yaml:4:38: header 'end-user' has exact and prefix; give one",
    ),
    (
        """\
        routes:
          a:
            http:
              - match: [{uri: {}}]
                route: [{service: a}]
        """,
        "mesh.yaml:4:23: 'uri' needs one of exact, prefix, regex",
    ),
    (
        """\
        routes:
          a:
            http:
              - match: [{uri: /foo}]
                route: [{service: a}]
        """,
        "mesh.yaml:4:23: 'uri' must be a mapping, got a string '/foo'",
    ),
    (
        "routes:\n  a:\n    http:\n      - route: [{service: a, weight: 50}]\n",
        "mesh.yaml:4:38: a single destination's weight must be 100 or left out",
    ),
    (
        "routes:\n  a:\n    http:\n      - route: []\n",
        "mesh.yaml:4:16: 'route' needs at least one destination",
    ),
    (
        "routes:\n  a:\n    http:\n      - match: []\n        route: [{service: a}]\n",
        "mesh.yaml:4:16: 'match' is empty; leave it out to match everything",
    ),
    (
        "services:\n  - {name: Hello_World, command: x, port: 1}\n",
        "mesh.yaml:2:12: 'name' must be lower-case letters, digits, '-' and '.', starting and"
        " ending with a letter or digit, got 'Hello_World'",
    ),
    (
        "services:\n  - {name: a, command: 'echo \"x', port: 1}\n",
        "mesh.yaml:2:24: 'command' cannot be split into words: No closing quotation",
    ),
    (
        "services:\n  - {name: a, command: x, port: 1}\n  - {name: a, command: y, port: 1}\n",
        "mesh.yaml:3:12: service 'a' is listed twice with the same labels;"
        " give each version its own labels",
    ),
    (
        "services:\n  - {name: a, command: x, port: 1, labels: {version: v1}}\n"
        "  - {name: a, command: y, port: 2, labels: {version: v2}}\n",
        "mesh.yaml:3:33: service 'a' has port 1 at line 2; every version of a service shares"
        " its port",
    ),
    (
        "gateway:\n  routes:\n    - {prefix: api, service: a}\n",
        "mesh.yaml:3:16: 'prefix' must start with '/', got 'api'",
    ),
    (
        "gateway:\n  routes:\n    - {hosts: ['a.*'], service: a}\n",
        "mesh.yaml:3:16: a host must be a name, '*.' and a name, or '*', got 'a.*'",
    ),
    (
        "tracing: {propagation: [b3, tracecontext]}\n",
        "mesh.yaml:1:29: unknown propagation format 'tracecontext';"
        " expected one of: b3, w3c, jaeger, baggage",
    ),
    (
        "tracing: {collector: localhost}\n",
        "mesh.yaml:1:22: 'collector' must be host:port, got 'localhost'",
    ),
    ("tracing: {sampling: .nan}\n", "mesh.yaml:1:21: 'sampling' must be from 0 to 100, got .nan"),
    ("- a\n", "mesh.yaml:1:1: the file must be a mapping, got a list"),
    (
        "services:\n  - {1: a}\n",
        "mesh.yaml:2:6: keys in a service must be strings, got an integer '1'",
    ),
    (
        "routes:\n  a:\n    http:\n      - match: [{headers: {'bad header': {exact: x}}}]\n"
        "        route: [{service: a}]\n",
        "mesh.yaml:4:28: 'bad header' is not a header name",
    ),
    (
        'routes:\n  a:\n    http:\n      - name: "tab\\there"\n        route: [{service: a}]\n',
        "mesh.yaml:4:15: 'name' must be 1 to 256 printable ASCII characters, got 'tab\\there'",
    ),
    ("tracing: {}\n---\ntracing: {}\n", "mesh.yaml:2:1: expected one YAML document, found another"),
    ("x: &a [1]\ny: *a\n", "mesh.yaml:2:4: aliases are not allowed (*a)"),
    (
        "tracing: {sampling: !!python/object:os.system 1}\n",
        "mesh.yaml:1:21: 'sampling' must be a number, got a value tagged"
        " !!python/object:os.system '1'",
    ),
    (b"tracing: {collector: \xff}\n", "mesh.yaml:1:22: not UTF-8: invalid start byte"),
    ('tracing: "x\x00"\n', "mesh.yaml:1:12: control characters are not allowed (#x0000)"),
    (
        "services:\n  - {name: a, command: x, port: " + "9" * 5000 + "}\n",
        "mesh.yaml:2:33: 'port' must be from 1 to 65535, got a huge integer",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_error_names_line_column_and_problem(text: str | bytes, expected: str) -> None:
    assert error(text) == expected


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="libyaml words syntax errors differently")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: b: c\n", "mesh.yaml:1:5: mapping values are not allowed in this context"),
        (
            "routes:\n  a: [\n",
            "mesh.yaml:3:1: did not find expected node content (while parsing a flow node)",
        ),
        (
            "routes:\n  a: {x: 1\nb: 2\n",
            "mesh.yaml:3:2: did not find expected ',' or '}' (while parsing a flow mapping)",
        ),
    ],
)
def test_yaml_syntax_errors(text: str, expected: str) -> None:
    assert error(text) == expected


def test_error_carries_its_parts_and_the_source_name() -> None:
    with pytest.raises(ConfigError) as caught:
        load_mesh("tracing: {sampling: high}\n", source="/etc/tracemesh/mesh.yaml")
    assert (caught.value.source, caught.value.line, caught.value.column) == (
        "/etc/tracemesh/mesh.yaml",
        1,
        21,
    )
    assert caught.value.message == "'sampling' must be a number, got a string 'high'"
    assert isinstance(caught.value, ValueError)


# --- hostile files: each is refused within a few seconds on a loaded machine


def refused_quickly(text: str | bytes) -> str:
    started = time.monotonic()
    message = error(text)
    assert time.monotonic() - started < 10
    return message


def test_billion_laughs_is_refused_at_the_first_alias() -> None:
    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        laughs += f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]\n"
    assert refused_quickly(laughs) == "mesh.yaml:2:8: aliases are not allowed (*a)"


def test_merge_keys_need_aliases_and_are_refused() -> None:
    text = "base: &base {port: 1}\nservices:\n  - <<: *base\n"
    assert refused_quickly(text) == "mesh.yaml:3:9: aliases are not allowed (*base)"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "{a: " * 50_000 + "1" + "}" * 50_000,
        "- " * 200_000 + "x",
        "".join(" " * i + "a:\n" for i in range(1000)),
    ],
    ids=["flow-lists", "flow-maps", "block-lists", "block-maps"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    message = refused_quickly(text)
    assert message.endswith(f": nesting is deeper than {MAX_DEPTH} levels")


@pytest.mark.parametrize(
    "text",
    [
        "[" + "1," * (MAX_BYTES // 2 - 2) + "]",
        "".join(f"k{i}: v\n" for i in range(MAX_BYTES // 10)),
        "[" + ",".join(f"&a{i} 1" for i in range(MAX_BYTES // 12)) + "]",
    ],
    ids=["flow-list", "block-map", "anchors"],
)
def test_too_many_values_are_refused(text: str) -> None:
    assert refused_quickly(text).endswith(f": more than {MAX_NODES} values")


def test_oversized_file_is_refused_before_parsing() -> None:
    assert refused_quickly("a: " + "x" * MAX_BYTES) == (
        f"mesh.yaml:1:1: file is larger than the limit of {MAX_BYTES} bytes"
    )
    assert refused_quickly(b"#" * (MAX_BYTES + 1)).endswith(
        "file is larger than the limit of 1048576 bytes"
    )


def test_a_huge_key_is_a_syntax_error_not_a_hang() -> None:
    assert ": " in refused_quickly("a" * (MAX_BYTES - 10) + ": 1")


def test_many_documents_stop_at_the_second() -> None:
    assert refused_quickly("---\n" * 100_000) == (
        "mesh.yaml:2:1: expected one YAML document, found another"
    )


def test_many_workloads_are_checked_in_linear_time() -> None:
    workloads = "".join(
        f"  - {{name: a, command: x, port: 1, labels: {{v: v{i}}}}}\n" for i in range(4000)
    )
    started = time.monotonic()
    assert len(load_mesh("services:\n" + workloads).services) == 4000
    assert time.monotonic() - started < 10


def test_quoted_values_are_cut_short_in_messages() -> None:
    message = refused_quickly("tracing: {collector: '" + "x" * 100_000 + "'}\n")
    assert message.startswith("mesh.yaml:1:22: 'collector' must be host:port, got 'xxx")
    assert message.endswith("...")
    assert len(message) < 600
