"""Span batches <-> Kafka messages, in the encodings Jaeger's collector and ingester use.

`protobuf` and `json` are Jaeger v1's: one api_v2 `Span` per message, its `process` embedded,
serialized with protobuf or jsonpb (lowerCamelCase, base64 ids, RFC 3339 times), keyed by the trace
id as `model.TraceID.String()` prints it (16 hex digits for a 64-bit id, else 32). `otlp_proto`
and `otlp_json` are the OpenTelemetry Kafka exporter's with `partition_traces_by_id`: one
`ExportTraceServiceRequest` per trace of the batch, keyed by the 32-digit hex trace id. Keying by
trace id keeps each trace in one partition, so one ingester sees all of it.

Decoding a message either yields its spans (some may be rejected as invalid, as receivers do) or
raises `DecodeError`: the ingester counts such a message as poison and skips it.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from google.protobuf import json_format

from tracemesh import accel
from tracemesh.codecs import DecodeError
from tracemesh.codecs import jaeger_proto as jp
from tracemesh.codecs.json_repair import lenient_load, repair_jaeger
from tracemesh.codecs.otlp_json import decode_json, traces_data_json
from tracemesh.codecs.otlp_proto import (
    DecodedBatch,
    batch_from_request,
    batch_from_spans,
    decode_request,
    span_from_row,
)
from tracemesh.codecs.proto import jaeger_model_pb2 as pb
from tracemesh.codecs.protowire import length_delimited
from tracemesh.model.batch import ResourceGroup, SpanBatch
from tracemesh.model.span import Scope, Span

# Kafka's `protobuf` encoding wire to wire in C (accel/_jaeger_proto_span.c): the Python path
# builds every span as model objects and then as api_v2 messages, ~10x `otlp_proto`'s cost.
_accel = accel.load("_jaeger_proto_span")

PROTOBUF, JSON, OTLP_PROTO, OTLP_JSON = "protobuf", "json", "otlp_proto", "otlp_json"
ENCODINGS = (PROTOBUF, JSON, OTLP_PROTO, OTLP_JSON)
Message = tuple[bytes, bytes]  # (key, value)


def check_encoding(encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown Kafka encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
    return encoding


def jaeger_key(trace_id: bytes) -> bytes:
    """`model.TraceID.String()`: `%016x` of the low half when the high half is zero."""
    return (trace_id[8:] if trace_id[:8] == b"\0" * 8 else trace_id).hex().encode()


# ---- encoding ----------------------------------------------------------------------------------


def encode(batch: SpanBatch, encoding: str) -> list[Message]:
    if encoding in (PROTOBUF, JSON):
        return _encode_jaeger(batch, encoding == JSON)
    if encoding == OTLP_PROTO:
        return [(key, _request_bytes(groups)) for key, groups in _by_trace(batch).items()]
    if encoding == OTLP_JSON:
        return [
            (key, orjson.dumps(traces_data_json(_spans(groups))))
            for key, groups in _by_trace(batch).items()
        ]
    raise ValueError(f"unknown Kafka encoding {encoding!r}")


def _encode_jaeger(batch: SpanBatch, as_json: bool) -> list[Message]:
    out: list[Message] = []
    for group in batch.groups:
        process = jp.process_to_pb(group.resource)
        fast = None
        if _accel is not None and not as_json:
            # what the group's spans share, encoded once: the scope tags and the process field
            scope = [jp.tag(k, v) for k, v in _scope_tags(group.scope)]
            shared = b"".join(length_delimited(8, t.SerializeToString()) for t in scope)
            fast = (shared, length_delimited(10, process.SerializeToString()))
        for row in group.rows:
            value = None if fast is None or _accel is None else _accel.span_bytes(row.raw, *fast)
            if value is None:  # the reference path (and where the accelerator declines)
                span = jp.span_to_pb(span_from_row(row.raw, group.resource, group.scope))
                span.process.CopyFrom(process)
                if as_json:
                    value = orjson.dumps(json_format.MessageToDict(span))
                else:
                    value = span.SerializeToString()
            out.append((jaeger_key(row.trace_id), value))
    return out


def _scope_tags(scope: Scope) -> list[tuple[str, str]]:
    tags = [("otel.scope.name", scope.name)] if scope.name else []
    return tags + ([("otel.scope.version", scope.version)] if scope.version else [])


def _by_trace(batch: SpanBatch) -> dict[bytes, list[ResourceGroup]]:
    """Each trace's rows, still grouped by resource and scope, in arrival order."""
    traces: dict[bytes, dict[int, ResourceGroup]] = {}
    for index, group in enumerate(batch.groups):
        for row in group.rows:
            groups = traces.setdefault(row.trace_id, {})
            part = groups.get(index)
            if part is None:
                part = groups[index] = ResourceGroup(group.resource, group.scope)
            part.rows.append(row)
    return {tid.hex().encode(): list(groups.values()) for tid, groups in traces.items()}


def _spans(groups: Sequence[ResourceGroup]) -> list[Span]:
    return [span_from_row(r.raw, g.resource, g.scope) for g in groups for r in g.rows]


def _request_bytes(groups: Sequence[ResourceGroup]) -> bytes:
    from tracemesh.collector.agent import encode_request  # the collector imports storage

    return encode_request(groups)


# ---- decoding ----------------------------------------------------------------------------------


def decode(value: bytes, encoding: str) -> DecodedBatch:
    """The spans of one message; `DecodeError` when the message is not of `encoding`."""
    if not value:
        raise DecodeError("empty message: no spans")
    if encoding == PROTOBUF:
        span = pb.Span()
        return _from_jaeger(span, jp.parse_repairing(span, value, "Span protobuf"))
    if encoding == JSON:
        return _jaeger_json(value)
    if encoding == OTLP_PROTO:
        return decode_request(value)
    if encoding == OTLP_JSON:
        try:
            request, repaired = decode_json(value)
            out = batch_from_request(request)
            out.batch.repaired = repaired
            return out
        except RecursionError:
            raise DecodeError("OTLP JSON nested too deeply") from None
    raise ValueError(f"unknown Kafka encoding {encoding!r}")


def _jaeger_json(value: bytes) -> DecodedBatch:
    span = pb.Span()
    try:
        json_format.Parse(value, span, ignore_unknown_fields=True)
        return _from_jaeger(span, 0)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        error = DecodeError(f"invalid Jaeger api_v2 Span JSON: {exc}")
    # Text that is not UTF-8: repaired as `json_repair` does, the warnings in `warnings`.
    try:
        doc, repaired = repair_jaeger(lenient_load(value))
        span = pb.Span()
        json_format.ParseDict(doc, span, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError):
        raise error from None
    return _from_jaeger(span, repaired)


def _from_jaeger(span: pb.Span, repaired: int) -> DecodedBatch:
    if not span.ByteSize():
        raise DecodeError("empty Jaeger span message")
    decoded = jp.spans_from_batch(pb.Batch(spans=[span]))
    batch = batch_from_spans(decoded.spans)
    batch.repaired = repaired
    return DecodedBatch(batch, decoded.rejected, decoded.error)
