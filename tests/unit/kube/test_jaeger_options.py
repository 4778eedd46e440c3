"""Jaeger's options -> tracemesh flags: names, nesting, durations, values, and what is reported."""

from __future__ import annotations

import pytest

from tracemesh.kube.jaeger_options import flatten, go_duration_seconds, translate


def test_nested_and_dotted_options_flatten_alike() -> None:
    nested = {"es": {"server-urls": "http://a:9200", "bulk": {"size": 10}}, "log-level": "debug"}
    dotted = {"es.server-urls": "http://a:9200", "es.bulk.size": 10, "log-level": "debug"}
    assert flatten(nested) == flatten(dotted) == dotted


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("72h", 259200.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("10", 10.0),
        ("500us", 0.0005),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5 minutes", "1x", "h", "1h30"])
def test_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        go_duration_seconds(text)


def test_names_values_and_renames() -> None:
    flags = translate(
        {
            "memory": {"max-traces": 5000},
            "es.use-aliases": True,
            "es.bulk.flush-interval": "200ms",
            "collector.queue-size": 10,
            "reporter.grpc.host-port": "dns:///c-collector-headless.ns.svc:14250",
        },
        "spec.x.options",
    )
    assert flags.errors == []
    assert flags.args == [
        "--queue.max-spans=10",
        "--es.bulk.flush-interval=0.2",
        "--es.use-aliases=true",
        "--memory.max-traces=5000",
        "--agent.collector=c-collector-headless.ns.svc:4317",
    ]
    assert any("14250 replaced" in w for w in flags.warnings)


def test_unknown_ignored_reserved_and_bad_values_are_reported() -> None:
    flags = translate(
        {
            "collector.num-workers": 50,
            "collector.otlp.enabled": True,
            "query.http-port": 1,
            "memory.max-traces": "lots",
            "es.version": 7.5,
        },
        "spec.allInOne.options",
    )
    assert flags.args == []
    text = "\n".join(flags.warnings)
    assert "spec.allInOne.options.collector.num-workers: unknown option" in text
    assert "collector.otlp.enabled: ignored" in text
    assert "query.http-port: ignored (set by the operator)" in text
    assert len(flags.errors) == 2 and "memory.max-traces" in flags.errors[0] + flags.errors[1]


def test_options_that_are_not_a_map() -> None:
    assert translate(["log-level=debug"], "spec.query.options").errors == [
        "spec.query.options: must be a map of option names to values"
    ]
