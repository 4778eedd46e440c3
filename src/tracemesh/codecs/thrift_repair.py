"""Jaeger Thrift batches with text that is not UTF-8, repaired as Jaeger repairs protobuf.

`thrift_spec` reads a batch with every string as bytes when given this repair; it then gives
a bad operation name the marker `INVALID_NAME`, a bad tag key a generated name, a bad string
tag value the same bytes as a binary tag, other bad text U+FFFD, and adds to each span a tag
holding what was changed in it or its process (`model.span_warnings`).
"""

from __future__ import annotations

from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.utf8_repair import INVALID_NAME, KEY_PREFIX
from tracemesh.model.span_warnings import WARNINGS_ATTRIBUTE


def repair_batch(struct_: ts.ThriftStruct) -> None:
    """Repair a Batch (or the `batch` inside `emitBatch` arguments) in place; any other struct
    gets U+FFFD for its bad text. The number of spans changed is left in `batch.repaired`."""
    if isinstance(struct_, ts.EmitZipkinBatchArgs):
        repair_zipkin(struct_)
        return
    batch = getattr(struct_, "batch", struct_)
    if not isinstance(batch, ts.Batch):
        ts.repair_strings(struct_)
        return
    keys = [0]
    inherited: list[str] = []
    if batch.process is not None:
        _tags(batch.process.tags, inherited, keys)
        if ts.repair_strings(batch.process):
            inherited.append("text was not valid UTF-8; invalid bytes replaced by U+FFFD")
        inherited = [f"process: {text}" for text in inherited]
    repaired = 0
    for span in batch.spans or ():
        warnings = list(inherited)
        name = span.operationName
        if isinstance(name, bytes):
            try:
                span.operationName = name.decode("utf-8")
            except UnicodeDecodeError:
                span.operationName = INVALID_NAME
                warnings.append(f"the span name was not valid UTF-8; replaced by {INVALID_NAME!r}")
        _tags(span.tags, warnings, keys)
        for log in span.logs or ():
            _tags(log.fields, warnings, keys)
        if ts.repair_strings(span):
            warnings.append("text was not valid UTF-8; invalid bytes replaced by U+FFFD")
        if warnings:
            repaired += 1
            note = ts.Tag(key=WARNINGS_ATTRIBUTE, vType=ts.TagType.STRING, vStr="\n".join(warnings))
            span.tags = [*(span.tags or []), note]
    ts.repair_strings(struct_)
    batch.repaired = repaired  # type: ignore[attr-defined]


def repair_zipkin(struct_: ts.ThriftStruct) -> None:
    """Zipkin Thrift spans (`emitZipkinBatch` arguments) repaired the same way; each span's
    warnings are left in its `warnings` attribute for `zipkin_thrift` to carry over."""
    spans = getattr(struct_, "spans", None) or []
    keys = [0]
    for span in spans:
        warnings: list[str] = []
        name = span.name
        if isinstance(name, bytes):
            try:
                span.name = name.decode("utf-8")
            except UnicodeDecodeError:
                span.name = INVALID_NAME
                warnings.append(f"the span name was not valid UTF-8; replaced by {INVALID_NAME!r}")
        for note in span.binary_annotations or ():
            if isinstance(note.key, bytes):
                try:
                    note.key = note.key.decode("utf-8")
                except UnicodeDecodeError:
                    keys[0] += 1
                    note.key = f"{KEY_PREFIX}{keys[0]}"
                    warnings.append(f"an attribute key was not valid UTF-8; renamed {note.key!r}")
            kind = note.annotation_type
            if kind in (None, ts.AnnotationType.STRING) and not _utf8(note.value or b""):
                note.annotation_type = ts.AnnotationType.BYTES
                warnings.append("an attribute value was not valid UTF-8; stored as bytes")
        if ts.repair_strings(span):
            warnings.append("text was not valid UTF-8; invalid bytes replaced by U+FFFD")
        span.warnings = warnings
    ts.repair_strings(struct_)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _tags(tags: list[ts.Tag] | None, warnings: list[str], keys: list[int]) -> None:
    for tag in tags or ():
        if isinstance(tag.key, bytes):
            try:
                tag.key = tag.key.decode("utf-8")
            except UnicodeDecodeError:
                keys[0] += 1
                tag.key = f"{KEY_PREFIX}{keys[0]}"
                warnings.append(f"an attribute key was not valid UTF-8; renamed {tag.key!r}")
        if isinstance(tag.vStr, bytes):
            try:
                tag.vStr = tag.vStr.decode("utf-8")
            except UnicodeDecodeError:
                tag.vBinary, tag.vStr, tag.vType = tag.vStr, None, ts.TagType.BINARY
                warnings.append("an attribute value was not valid UTF-8; stored as bytes")
