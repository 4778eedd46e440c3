"""How propagators read and write headers without knowing the container they live in.

A propagator never touches a header container directly: it asks a `Getter` for every value of a
name (case-insensitively) and for the names present, and tells a `Setter` to set or delete a name.
`HEADERS` does both for the containers the mesh passes around:

- a mapping of name to value (`dict[str, str]`), or name to values (`dict[str, list[str]]`);
  mappings with a `getlist` or `get_all` method (Starlette's `Headers`) give all their values
  that way, and so does `email.message.Message` (`http.client.HTTPMessage`);
- a list of `(name, value)` pairs, as `str` or as `bytes` (raw HTTP/1 and ASGI headers), bytes
  being read and written as Latin-1, the HTTP default.

Writes use lowercase names (HTTP/2 and gRPC metadata require them) and replace every existing
value of the name, whatever its case. A caller with its own header class implements the two small
protocols below instead.

Each `HEADERS` call scans the container, which is fine for one header but not for the dozen a
propagator reads per request; the `Propagator` therefore reads through a `HeaderIndex` built in
one pass (`index`) and writes through `Edits` applied in one pass (`apply`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping, MutableSequence
from contextlib import suppress
from email.message import Message
from typing import Any, Protocol, TypeGuard, TypeVar, cast

C_contra = TypeVar("C_contra", contravariant=True)


class Getter(Protocol[C_contra]):
    def get(self, carrier: C_contra, name: str) -> list[str]:
        """Every value of the header `name` (any case), in order; [] when absent."""
        ...

    def keys(self, carrier: C_contra) -> Iterable[str]:
        """The header names present, as the carrier spells them."""
        ...


class Setter(Protocol[C_contra]):
    def set(self, carrier: C_contra, name: str, value: str) -> None:
        """Replace every value of `name` (any case) with this one."""
        ...

    def delete(self, carrier: C_contra, name: str) -> None:
        """Remove every value of `name` (any case); absent is fine."""
        ...


HeaderIndex = dict[str, list[Any]]
"""Lowercased name -> raw values (str, or bytes not yet decoded), as `HeaderAccess.index` builds."""


MAX_DECODED = 65536
"""Bytes of a raw value decoded at most: no format reads past 8192 characters of a header, and
a longer value is refused or cut the same whether it is 64 KiB or 10 MB, so none costs more."""


def _text(value: object) -> str:
    if isinstance(value, str):
        return value  # as is, not copied
    if isinstance(value, bytes):
        return value[:MAX_DECODED].decode("latin-1")
    return str(value)


def _lower(name: object) -> str:
    return name.decode("latin-1").lower() if isinstance(name, bytes) else str(name).lower()


def _is_message(carrier: object) -> TypeGuard[Message]:
    """`email.message.Message` and `http.client.HTTPMessage`: not mappings, but header bags."""
    return isinstance(carrier, Message)


def _is_writable_mapping(carrier: object) -> TypeGuard[MutableMapping[Any, Any]]:
    """A mutable mapping, or a mapping with item assignment (Starlette's `MutableHeaders`)."""
    if isinstance(carrier, MutableMapping):
        return True
    return (
        isinstance(carrier, Mapping)
        and hasattr(carrier, "__setitem__")
        and hasattr(carrier, "__delitem__")
    )


def _pairs(carrier: list[Any] | tuple[Any, ...]) -> Iterator[tuple[str | bytes, str | bytes]]:
    for pair in carrier:
        yield cast(tuple[str | bytes, str | bytes], pair)


class HeaderAccess:
    """A `Getter` and `Setter` for mappings, email-style messages and lists of pairs."""

    def get(self, carrier: object, name: str) -> list[str]:
        return [_text(v) for v in self.index(carrier).get(name.lower(), ())]

    def keys(self, carrier: object) -> Iterable[str]:
        if isinstance(carrier, Mapping) or _is_message(carrier):
            return [_text(k) for k in carrier]
        if isinstance(carrier, list | tuple):
            return [_text(k) for k, _ in _pairs(carrier)]
        raise TypeError(f"unsupported header carrier {type(carrier).__name__}")

    def set(self, carrier: object, name: str, value: str) -> None:
        self.apply(carrier, {name.lower(): value})

    def delete(self, carrier: object, name: str) -> None:
        self.apply(carrier, {name.lower(): None})

    def index(self, carrier: object) -> HeaderIndex:
        """Every header by lowercased name, in one pass; values are decoded only when read."""
        found: HeaderIndex = {}
        if _is_message(carrier):
            for key in dict.fromkeys(_lower(k) for k in carrier):
                found[key] = list(carrier.get_all(key, ()))
        elif isinstance(carrier, Mapping):
            many = getattr(carrier, "getlist", None)
            for key, value in carrier.items():
                lowered = _lower(key)
                if callable(many):
                    found[lowered] = list(many(key))
                elif isinstance(value, list | tuple):
                    found.setdefault(lowered, []).extend(value)
                else:
                    found.setdefault(lowered, []).append(value)
        elif isinstance(carrier, list | tuple):
            for name, raw in carrier:
                key = (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
                if key in found:
                    found[key].append(raw)
                else:
                    found[key] = [raw]
        else:
            raise TypeError(f"unsupported header carrier {type(carrier).__name__}")
        return found

    def apply(self, carrier: object, changes: Mapping[str, str | None]) -> None:
        """Set (a value) or delete (None) each lowercase name in one pass over the carrier."""
        if not changes:
            return
        if _is_writable_mapping(carrier):
            for key in dict.fromkeys(k for k in carrier if _lower(k) in changes):
                with suppress(KeyError):
                    del carrier[key]
            for name, value in changes.items():
                if value is not None:
                    carrier[name] = value
        elif _is_message(carrier):
            for name, value in changes.items():
                del carrier[name]  # deletes every value, any case
                if value is not None:
                    carrier[name] = value
        elif isinstance(carrier, MutableSequence):
            as_bytes = bool(carrier) and isinstance(carrier[0][0], bytes)
            carrier[:] = [pair for pair in carrier if _lower(pair[0]) not in changes]
            for name, value in changes.items():
                if value is None:
                    continue
                if as_bytes:
                    carrier.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
                else:
                    carrier.append((name, value))
        else:
            raise TypeError(f"cannot write headers into {type(carrier).__name__}")


class IndexGetter:
    """A `Getter` over a `HeaderIndex`: constant time per name."""

    def get(self, carrier: HeaderIndex, name: str) -> list[str]:
        return [_text(v) for v in carrier.get(name.lower(), ())]

    def keys(self, carrier: HeaderIndex) -> Iterable[str]:
        return carrier.keys()


class Edits:
    """A `Setter` that records changes, to be applied to the real carrier at once."""

    def __init__(self) -> None:
        self.changes: dict[str, str | None] = {}

    def set(self, carrier: object, name: str, value: str) -> None:
        self.changes[name.lower()] = value

    def delete(self, carrier: object, name: str) -> None:
        self.changes[name.lower()] = None

    def apply(self, carrier: Any, setter: Setter[Any] | None = None) -> None:
        """Apply in one pass with `HEADERS`, or change by change through the caller's setter."""
        if setter is None:
            HEADERS.apply(carrier, self.changes)
            return
        for name, value in self.changes.items():
            if value is None:
                setter.delete(carrier, name)
            else:
                setter.set(carrier, name, value)


class Selection:
    """Picks out, in one pass, the few headers a propagator reads: those named in `names` or
    whose name starts with one of `prefixes` (all lowercase), by lowercased name, values decoded.

    A request carries a dozen headers and a propagator reads some of them: checking each name
    against a set (as bytes, for raw HTTP/1 headers, so nothing else is decoded) and keeping
    only these makes every later lookup a dict hit on a small dict, and an empty result says
    at once that the request carries no context at all.
    """

    __slots__ = ("_byte_names", "_byte_prefixes", "names", "prefixes")

    def __init__(self, names: Iterable[str], prefixes: tuple[str, ...]) -> None:
        self.names = frozenset(name.lower() for name in names)
        self.prefixes = tuple(prefix.lower() for prefix in prefixes)
        self._byte_names = frozenset(name.encode("latin-1") for name in self.names)
        self._byte_prefixes = tuple(prefix.encode("latin-1") for prefix in self.prefixes)

    def select(self, carrier: object) -> dict[str, list[str]]:
        """The selected headers of `carrier` (any container `HEADERS` reads), for `TEXT`."""
        found: dict[str, list[str]] = {}
        names, prefixes = self.names, self.prefixes
        if isinstance(carrier, list | tuple):
            byte_names, byte_prefixes = self._byte_names, self._byte_prefixes
            for name, raw in carrier:
                if type(name) is bytes:
                    low = name.lower()
                    if low not in byte_names and not low.startswith(byte_prefixes):
                        continue
                    key = low.decode("latin-1")
                else:
                    key = str(name).lower()
                    if key not in names and not key.startswith(prefixes):
                        continue
                value = _text(raw)
                values = found.get(key)
                if values is None:
                    found[key] = [value]
                else:
                    values.append(value)
            return found
        for key, raws in HEADERS.index(carrier).items():
            if key in names or key.startswith(prefixes):
                found[key] = [_text(raw) for raw in raws]
        return found


class TextGetter:
    """A `Getter` over what `Selection.select` returns (lowercase names, decoded values).

    Unlike other getters it takes lowercase names only, as every format module passes them:
    most lookups miss, and lowercasing each name first would double their cost.
    """

    def get(self, carrier: dict[str, list[str]], name: str) -> list[str]:
        values = carrier.get(name)
        return list(values) if values else []

    def keys(self, carrier: dict[str, list[str]]) -> Iterable[str]:
        return carrier.keys()


HEADERS = HeaderAccess()
"""The default getter and setter; propagators use it when the caller passes none."""
INDEXED = IndexGetter()
TEXT = TextGetter()


def indexed(carrier: Any, getter: Getter[Any]) -> tuple[Any, Getter[Any]]:
    """The carrier as a `HeaderIndex` when read with `HEADERS`, for many reads; else as is."""
    if getter is HEADERS:
        return HEADERS.index(carrier), INDEXED
    return carrier, getter


def prefixed(carrier: Any, getter: Getter[Any], prefix: str, limit: int) -> list[tuple[str, str]]:
    """(name after `prefix`, first value) of the headers whose lowercased name has the prefix.

    At most `limit` distinct names are looked at, so a flood of such headers costs no more.
    """
    carrier, getter = indexed(carrier, getter)
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in getter.keys(carrier):
        if len(seen) == limit:
            break
        lowered = name.lower()
        if not lowered.startswith(prefix) or lowered in seen:
            continue
        seen.add(lowered)
        values = getter.get(carrier, name)
        if values:
            found.append((lowered[len(prefix) :], values[0]))
    return found
