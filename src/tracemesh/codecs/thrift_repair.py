"""Jaeger Thrift batches with text that is not UTF-8, repaired as Jaeger repairs protobuf.

`thrift_spec` reads such a batch leniently (bad strings left as bytes); this step then gives a
bad operation name the marker `INVALID_NAME`, a bad tag key a generated name, a bad string tag
value the same bytes as a binary tag, other text U+FFFD, and adds to each span a tag holding
what was changed in it or its process (`model.span_warnings`).
"""

from __future__ import annotations

from thrift.Thrift import TType

from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.utf8_repair import INVALID_NAME, KEY_PREFIX
from tracemesh.model.span_warnings import WARNINGS_ATTRIBUTE


def repair_batch(struct_: ts.ThriftStruct) -> None:
    """Repair a Batch (or the `batch` inside `emitBatch` arguments) in place; any other struct
    gets U+FFFD for its bad text. The number of spans changed is left in `batch.repaired`."""
    batch = getattr(struct_, "batch", struct_)
    if not isinstance(batch, ts.Batch):
        ts.repair_strings(struct_)
        return
    keys = [0]
    process_warnings: list[str] = []
    if batch.process is not None:
        _tags(batch.process.tags, process_warnings, keys)
        process_warnings = [f"process: {text}" for text in process_warnings]
    repaired = 0
    for span in batch.spans or ():
        warnings = list(process_warnings)
        if isinstance(span.operationName, bytes):
            span.operationName = INVALID_NAME
            warnings.append(f"the span name was not valid UTF-8; replaced by {INVALID_NAME!r}")
        _tags(span.tags, warnings, keys)
        for log in span.logs or ():
            _tags(log.fields, warnings, keys)
        if _has_bytes(span):
            warnings.append("text was not valid UTF-8; invalid bytes replaced by U+FFFD")
        if warnings:
            repaired += 1
            note = ts.Tag(key=WARNINGS_ATTRIBUTE, vType=ts.TagType.STRING, vStr="\n".join(warnings))
            span.tags = [*(span.tags or []), note]
    ts.repair_strings(struct_)
    batch.repaired = repaired  # type: ignore[attr-defined]


def _tags(tags: list[ts.Tag] | None, warnings: list[str], keys: list[int]) -> None:
    for tag in tags or ():
        if isinstance(tag.key, bytes):
            keys[0] += 1
            tag.key = f"{KEY_PREFIX}{keys[0]}"
            warnings.append(f"an attribute key was not valid UTF-8; renamed {tag.key!r}")
        if isinstance(tag.vStr, bytes):
            tag.vBinary, tag.vStr, tag.vType = tag.vStr, None, ts.TagType.BINARY
            warnings.append("an attribute value was not valid UTF-8; stored as bytes")


def _has_bytes(struct_: ts.ThriftStruct) -> bool:
    """Whether any UTF8 field below is still bytes (references, ids: never; kept general)."""
    for entry in struct_.thrift_spec:
        if entry is None:
            continue
        _, ttype, name, args, _ = entry
        value = getattr(struct_, name)
        if ttype == TType.STRING and args != "BINARY" and isinstance(value, bytes):
            return True
        if ttype == TType.STRUCT and value is not None and _has_bytes(value):
            return True
        if (
            ttype == TType.LIST
            and args[0] == TType.STRUCT
            and any(_has_bytes(item) for item in value or ())
        ):
            return True
    return False
