"""Absurd numbers in tags and timestamps: a clear DecodeError or no status, never a crash."""

from tracemesh.codecs.jaeger_status import http_status


def test_status_strings_within_int64() -> None:
    assert http_status("500") == 500
    assert http_status("+0000000000000000000000404") == 404  # leading zeros, as ParseInt
    assert http_status("9223372036854775807") == 2**63 - 1
    assert http_status("9223372036854775808") is None  # one past int64


def test_a_huge_number_is_not_a_status_and_does_not_raise() -> None:
    assert http_status("9" * 5000) is None
    assert http_status("1e3") is None


def test_a_zipkin_annotation_past_fixed64_nanoseconds_is_a_decode_error() -> None:
    import orjson
    import pytest

    from tracemesh.codecs import DecodeError
    from tracemesh.codecs.zipkin_json import batch_from_json_v2

    span = {"traceId": "a" * 32, "id": "b" * 16, "timestamp": 1, "duration": 1,
            "annotations": [{"timestamp": 2 * 10**16, "value": "late"}]}  # fmt: skip
    with pytest.raises(DecodeError, match="annotation timestamp"):
        batch_from_json_v2(orjson.dumps([span]))
