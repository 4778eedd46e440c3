"""Static sampling strategies from Jaeger's strategies file (or URL), reloaded when it changes and
served as api_v2 `SamplingStrategyResponse`s or their two JSON forms.

The file format and its rules are Jaeger's (`internal/sampling/samplingstrategy/file`):
`default_strategy` and `service_strategies[]`, each `{type, param, operation_strategies[]}`;
`probabilistic` (param = probability) or `ratelimiting` (param = traces/s, truncated to an int);
an unknown type means the default probabilistic strategy; operation strategies may only be
probabilistic (others are skipped with a warning); the default strategy's operations are merged
into every service's list unless the service names the same operation, and a service without a
list of its own inherits the default list with its own probability as the default. Keys match
as Go's encoding/json matches them (exact, else case-insensitive; unknown keys ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tracemesh.codecs.proto.jaeger_sampling_pb2 import (
    PROBABILISTIC,
    RATE_LIMITING,
    OperationSamplingStrategy,
    ProbabilisticSamplingStrategy,
    RateLimitingSamplingStrategy,
    SamplingStrategyResponse,
    SamplingStrategyType,
)
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.sampling")

JAEGER_DEFAULT_PROBABILITY = 0.001  # Jaeger's default without a file; all-in-one configs use 1.0
URL_TIMEOUT_SECONDS = 1.0  # as Jaeger's downloader
MAX_DOCUMENT_BYTES = 16 << 20
_INT32 = (-(2**31), 2**31 - 1)
_INT16 = (-(2**15), 2**15 - 1)


class StrategyFileError(ValueError):
    """The strategies file cannot be read, or is not a valid strategies document."""


@dataclass(slots=True)
class Strategies:
    """One parsed document: the default strategy and the per-service ones."""

    default: SamplingStrategyResponse
    services: dict[str, SamplingStrategyResponse] = field(default_factory=dict)


# ---- parsing -----------------------------------------------------------------------------------


def default_response(probability: float) -> SamplingStrategyResponse:
    return SamplingStrategyResponse(
        strategyType=PROBABILISTIC,
        probabilisticSampling=ProbabilisticSamplingStrategy(samplingRate=probability),
    )


def parse_strategies(data: bytes, default_probability: float) -> Strategies:
    """Parse a strategies document; `null` (or `{}`) means the defaults."""
    try:
        document = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise StrategyFileError(f"not valid JSON: {exc}") from None
    out = Strategies(default_response(default_probability))
    if document is None:
        return out
    top = _fields(document, "the document", ("default_strategy", "service_strategies"))
    if top.get("default_strategy") is not None:
        out.default = _service(top["default_strategy"], "default_strategy", default_probability)
    default_ops = (
        out.default.operationSampling if out.default.HasField("operationSampling") else None
    )
    for i, entry in enumerate(_array(top.get("service_strategies"), "service_strategies")):
        where = f"service_strategies[{i}]"
        name = _string(_fields(entry, where, ("service",)).get("service"), f"{where}.service")
        response = out.services[name] = _service(entry, where, default_probability)
        if default_ops is None:
            continue
        if not response.HasField("operationSampling"):
            response.operationSampling.CopyFrom(default_ops)
            if response.HasField("probabilisticSampling"):
                rate = response.probabilisticSampling.samplingRate
                response.operationSampling.defaultSamplingProbability = rate
            continue
        own = response.operationSampling.perOperationStrategies
        named = {op.operation for op in own}
        own.extend(op for op in default_ops.perOperationStrategies if op.operation not in named)
    return out


def _service(obj: object, where: str, default_probability: float) -> SamplingStrategyResponse:
    fields = _fields(obj, where, ("type", "param", "operation_strategies"))
    response = _strategy(fields, where, default_probability)
    operations = _array(fields.get("operation_strategies"), f"{where}.operation_strategies")
    if not operations:
        return response
    per_op = response.operationSampling
    per_op.SetInParent()
    per_op.defaultSamplingProbability = (
        response.probabilisticSampling.samplingRate
        if response.strategyType == PROBABILISTIC
        else default_probability
    )
    for i, op_obj in enumerate(operations):
        op_where = f"{where}.operation_strategies[{i}]"
        op_fields = _fields(op_obj, op_where, ("operation", "type", "param"))
        operation = _string(op_fields.get("operation"), f"{op_where}.operation")
        op = _strategy(op_fields, op_where, default_probability)
        if op.strategyType == RATE_LIMITING:
            log.warning(
                "sampling strategies: %s (%r) is ratelimiting, but operation strategies can only "
                "be probabilistic; skipped, the operation gets the default probability %g",
                op_where, operation, per_op.defaultSamplingProbability,
            )  # fmt: skip
            continue
        per_op.perOperationStrategies.append(
            OperationSamplingStrategy(
                operation=operation, probabilisticSampling=op.probabilisticSampling
            )
        )
    return response


def _strategy(
    fields: dict[str, object], where: str, default_probability: float
) -> SamplingStrategyResponse:
    kind = _string(fields.get("type"), f"{where}.type")
    param = _number(fields.get("param"), f"{where}.param")
    if kind == "probabilistic":
        return default_response(param)
    if kind == "ratelimiting":
        limit = min(max(math.trunc(param), _INT32[0]), _INT32[1])
        return SamplingStrategyResponse(
            strategyType=RATE_LIMITING,
            rateLimitingSampling=RateLimitingSamplingStrategy(maxTracesPerSecond=limit),
        )
    log.warning(
        "sampling strategies: %s has unknown type %r; using probabilistic %g instead",
        where, kind, default_probability,
    )  # fmt: skip
    return default_response(default_probability)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _fields(obj: object, where: str, names: tuple[str, ...]) -> dict[str, object]:
    """An object's known keys, matched as Go's encoding/json matches struct fields."""
    if not isinstance(obj, dict):
        raise StrategyFileError(f"{where} must be a JSON object, not {_kind(obj)}")
    out: dict[str, object] = {}
    for key, value in obj.items():
        for name in names:
            if key == name or key.lower() == name:
                out[name] = value
                break
    return out


def _array(value: object, where: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise StrategyFileError(f"{where} must be a JSON array, not {_kind(value)}")
    return value


def _string(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StrategyFileError(f"{where} must be a string, not {_kind(value)}")
    return value


def _number(value: object, where: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StrategyFileError(f"{where} must be a number, not {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise StrategyFileError(f"{where} is out of range for a float64")
    return number


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


# ---- JSON forms --------------------------------------------------------------------------------


def response_json(response: SamplingStrategyResponse, *, numeric_enum: bool) -> dict[str, object]:
    """Jaeger's JSON for a response: the proto-JSON of `/sampling` (`strategyType` by name) or,
    with `numeric_enum`, the agent's legacy Thrift-JSON of `/?service=` (`strategyType` 0 or 1).

    Like Jaeger's, `strategyType` is always present, absent sub-objects are left out, and every
    field of `operationSampling` is written, zeros included. Integral numbers are written without
    a fraction (`1`, not `1.0`), as Go writes them."""
    kind = int(response.strategyType)
    out: dict[str, object] = {
        "strategyType": kind if numeric_enum else SamplingStrategyType.Name(response.strategyType)
    }
    if response.HasField("probabilisticSampling"):
        out["probabilisticSampling"] = _probabilistic(response.probabilisticSampling)
    if response.HasField("rateLimitingSampling"):
        limit = response.rateLimitingSampling.maxTracesPerSecond
        if numeric_enum and not _INT16[0] <= limit <= _INT16[1]:
            raise ValueError(f"maxTracesPerSecond {limit} does not fit the legacy i16 field")
        out["rateLimitingSampling"] = {"maxTracesPerSecond": limit}
    if response.HasField("operationSampling"):
        per_op = response.operationSampling
        operations: list[dict[str, object]] = []
        for op in per_op.perOperationStrategies:
            item: dict[str, object] = {"operation": op.operation}
            if op.HasField("probabilisticSampling"):
                item["probabilisticSampling"] = _probabilistic(op.probabilisticSampling)
            elif not numeric_enum:
                item["probabilisticSampling"] = None
            operations.append(item)
        out["operationSampling"] = {
            "defaultSamplingProbability": _go_number(per_op.defaultSamplingProbability),
            "defaultLowerBoundTracesPerSecond": _go_number(per_op.defaultLowerBoundTracesPerSecond),
            "perOperationStrategies": operations,
            "defaultUpperBoundTracesPerSecond": _go_number(per_op.defaultUpperBoundTracesPerSecond),
        }
    return out


def _probabilistic(strategy: ProbabilisticSamplingStrategy) -> dict[str, object]:
    return {"samplingRate": _go_number(strategy.samplingRate)}


def _go_number(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


# ---- the store ---------------------------------------------------------------------------------


class StrategyStore:
    """The strategies in force, from `path` (a file or an http(s) URL) or the defaults.

    The constructor does no I/O: `start()` loads the source (a missing or broken one raises
    `StrategyFileError`; a URL answering 503 means "keep the defaults") and polls it every
    `reload_interval` seconds (0 turns polling off). A file is re-read when its mtime, size or
    inode changes, a URL on every poll; a change that does not load or parse is logged and the
    last good strategies stay in force. Lookups are plain reads, safe from any thread.
    """

    def __init__(
        self,
        path: str | None,
        *,
        default_probability: float = 1.0,
        reload_interval: float = 5.0,
    ) -> None:
        if not 0.0 <= default_probability <= 1.0:
            raise ValueError(
                f"default_probability must be within [0, 1], not {default_probability}"
            )
        self.path = path or None
        self._default_probability = default_probability
        self._reload_interval = reload_interval
        self._strategies = Strategies(default_response(default_probability))
        self._is_url = bool(path) and urlsplit(path or "").scheme in ("http", "https")
        self._signature: tuple[int, int, int] | None = None
        self._content: bytes | None = None
        self._tasks = TaskOwner()

    async def start(self) -> None:
        if self.path is None:
            log.info("no sampling strategies file given; every service gets the default strategy")
            return
        data = await self._read(force=True)
        if data is not None:
            try:
                self._install(data)
            except StrategyFileError as exc:
                raise StrategyFileError(f"sampling strategies in {self.path}: {exc}") from None
        if self._reload_interval > 0:
            self._tasks.spawn("sampling:reload-strategies", self._poll())

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    def strategy_proto(self, service: str) -> SamplingStrategyResponse:
        response = SamplingStrategyResponse()
        response.CopyFrom(self._lookup(service))
        return response

    def strategy_json(self, service: str) -> dict[str, object]:
        """The proto-JSON answer of `/sampling?service=` and `/api/sampling?service=`."""
        return response_json(self._lookup(service), numeric_enum=False)

    def legacy_json(self, service: str) -> dict[str, object]:
        """The agent's `/?service=` answer: `strategyType` as a number. Raises ValueError for a
        rate limit too large for the legacy i16 field (Jaeger answers 500 there too)."""
        return response_json(self._lookup(service), numeric_enum=True)

    def _lookup(self, service: str) -> SamplingStrategyResponse:
        strategies = self._strategies
        return strategies.services.get(service, strategies.default)

    async def reload(self) -> bool:
        """Check the source once now; True when new strategies were installed."""
        try:
            data = await self._read(force=False)
            if data is None or data == self._content:
                return False
            self._install(data)
        except StrategyFileError as exc:
            log.error("sampling strategies not reloaded, keeping the last good ones: %s", exc)
            return False
        log.info("sampling strategies reloaded from %s", self.path)
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._reload_interval)
            await self.reload()

    def _install(self, data: bytes) -> None:
        self._content = data
        self._strategies = parse_strategies(data, self._default_probability)

    async def _read(self, *, force: bool) -> bytes | None:
        """The source's bytes; None when a file is unchanged or a URL answers 503."""
        assert self.path is not None
        if self._is_url:
            return await asyncio.to_thread(_download, self.path)
        signature, data = await asyncio.to_thread(
            _read_file, self.path, None if force else self._signature
        )
        self._signature = signature
        return data


def _read_file(
    path: str, unchanged: tuple[int, int, int] | None
) -> tuple[tuple[int, int, int], bytes | None]:
    """The file's (mtime, size, inode) and its bytes, or None when the signature is `unchanged`."""
    try:
        stat = os.stat(path)
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == unchanged:
            return signature, None
        with open(path, "rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise StrategyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise StrategyFileError(f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return signature, data


def _download(url: str) -> bytes | None:
    try:
        with contextlib.closing(urllib.request.urlopen(url, timeout=URL_TIMEOUT_SECONDS)) as resp:
            data: bytes = resp.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 503:
            log.info("sampling strategies URL %s answered 503; keeping the current ones", url)
            return None
        raise StrategyFileError(f"{url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StrategyFileError(f"cannot download {url}: {exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise StrategyFileError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    return data
