"""YAML read as nodes that keep their line and column, safely, with typed accessors whose every
error is a `ConfigError` naming the place (`mesh.yaml:12:5: ...`).

Composition runs on libyaml's event stream (the pure-Python parser when libyaml is missing) and
builds nodes itself, without recursion, so that hostile files stop early with a clear error:
aliases are refused (a billion-laughs file never expands), nesting is capped, and so are the
file's size and its number of values. Nothing is ever constructed from a tag, so `!!python/...`
is just a wrongly typed value.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Collection
from typing import Any, NoReturn, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 50_000  # ~100x a large hand-written mesh; libyaml yields ~200k events/s here
MAX_MESSAGE = 500

_STANDARD = "tag:yaml.org,2002:"
STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
_KINDS = {STR: "a string", INT: "an integer", FLOAT: "a number", BOOL: "a boolean"}

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolve = cast(Callable[[type[Node], Any, Any], str], yaml.resolver.Resolver().resolve)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class ConfigError(ValueError):
    """A mistake in a configuration file, at a 1-based line and column."""

    def __init__(self, source: str, line: int, column: int, message: str) -> None:
        if len(message) > MAX_MESSAGE:  # values quoted from a hostile file can be huge
            message = message[: MAX_MESSAGE - 3] + "..."
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.source = source
        self.line = line
        self.column = column
        self.message = message


def _utf8(text: str | bytes, source: str) -> bytes:
    if isinstance(text, str):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            line, column = _place(text[: exc.start])
            raise ConfigError(source, line, column, "text is not valid Unicode") from None
    else:
        data = text
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _place(data[: exc.start].decode("utf-8", "replace"))
            raise ConfigError(source, line, column, f"not UTF-8: {exc.reason}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(source, 1, 1, f"file is larger than the limit of {MAX_BYTES} bytes")
    return data


def read_limited(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes, reading no more than one byte past the size limit (which the loaders
    then refuse with a clear error)."""
    with open(path, "rb") as file:
        return file.read(MAX_BYTES + 1)


def _place(before: str) -> tuple[int, int]:
    """1-based line and column of the character after `before`."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def compose(text: str | bytes, source: str) -> Node | None:
    """The one document in `text` as a node tree; None for an empty file."""
    data = _utf8(text, source)
    try:
        return _compose(data, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(source, line, column, message) from None
    except yaml.reader.ReaderError as exc:
        position = exc.position if isinstance(exc.position, int) else 0
        line, column = _place(data[:position].decode("utf-8", "replace"))
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        shown = f" (#x{code:04x})" if isinstance(code, int) else ""
        raise ConfigError(source, line, column, f"{exc.reason}{shown}") from None


def _compose(data: bytes, source: str) -> Node | None:
    root: Node | None = None
    stack: list[tuple[Node, list[Node]]] = []  # open collections, each with a pending key
    documents = nodes = 0

    def fail(mark: Any, message: str) -> NoReturn:
        raise ConfigError(source, mark.line + 1, mark.column + 1, message)

    for event in yaml.parse(data, Loader=_LOADER):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                fail(event.start_mark, "expected one YAML document, found another")
            continue
        if isinstance(event, yaml.AliasEvent):
            fail(event.start_mark, f"aliases are not allowed (*{event.anchor})")
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()[0].end_mark = event.end_mark
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue  # stream start/end, document end
        nodes += 1
        if nodes > MAX_NODES:
            fail(event.start_mark, f"more than {MAX_NODES} values")
        node = _node(event)
        if stack:
            parent, pending = stack[-1]
            if isinstance(parent, SequenceNode):
                parent.value.append(node)
            elif pending:
                parent.value.append((pending.pop(), node))
            else:
                pending.append(node)
        else:
            root = node
        if isinstance(node, SequenceNode | MappingNode):
            stack.append((node, []))
            if len(stack) > MAX_DEPTH:
                fail(event.start_mark, f"nesting is deeper than {MAX_DEPTH} levels")
    return root


def _node(event: Any) -> Node:
    """The node an event starts, its tag resolved as PyYAML's composer resolves it."""
    scalar = isinstance(event, yaml.ScalarEvent)  # flags, so `event` keeps its Any type
    sequence = isinstance(event, yaml.SequenceStartEvent)
    kind = ScalarNode if scalar else SequenceNode if sequence else MappingNode
    tag = event.tag
    if tag is None or tag == "!":
        tag = _resolve(kind, event.value if scalar else None, event.implicit)
    if scalar:
        return ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    return kind(tag, [], event.start_mark, None, event.flow_style)


def describe(node: Node) -> str:
    """What a value is, for 'must be X, got Y' messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL:
        return "null"
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    kind = _KINDS.get(node.tag) or f"a value tagged {node.tag.replace(_STANDARD, '!!')}"
    return f"{kind} {text!r}"


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """'; did you mean 'x'?' for a near choice, else '; expected one of: a, b'."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return "; expected one of: " + ", ".join(choices)


class NodeReader:
    """Typed reads of composed nodes. `what` names the value in messages, e.g. "'port'"."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node, message: str) -> NoReturn:
        mark = node.start_mark
        raise ConfigError(self.source, mark.line + 1, mark.column + 1, message)

    def mapping(
        self, node: Node, what: str, allowed: Collection[str], required: Collection[str] = ()
    ) -> dict[str, Node]:
        """Value nodes by key. Unknown, duplicate and missing keys are errors; a key given with
        no value (`timeout:`) counts as absent unless it is required."""
        values: dict[str, Node] = {}
        for key, value in self.entries(node, what).items():
            name = key.value
            if name not in allowed:
                self.fail(key, f"unknown key {name!r}{did_you_mean(name, allowed)}")
            if value.tag != NULL or name in required:
                values[name] = value
        for name in required:
            if name not in values:
                self.fail(node, f"{what} is missing the key {name!r}")
        return values

    def entries(self, node: Node, what: str) -> dict[ScalarNode, Node]:
        """Key node -> value node of a mapping whose keys are free-form strings."""
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping, got {describe(node)}")
        seen: dict[str, ScalarNode] = {}
        result: dict[ScalarNode, Node] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag != STR:
                self.fail(key, f"keys in {what} must be strings, got {describe(key)}")
            if key.value in seen:
                first = seen[key.value].start_mark.line + 1
                self.fail(key, f"duplicate key {key.value!r} (first at line {first})")
            seen[key.value] = key
            result[key] = value
        return result

    def sequence(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what} must be a list, got {describe(node)}")
        return list(node.value)

    def string(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag != STR:
            hint = ""
            if isinstance(node, ScalarNode) and node.tag in (INT, FLOAT, BOOL):
                hint = f' (quote it: "{node.value}")'
            self.fail(node, f"{what} must be a string, got {describe(node)}{hint}")
        return str(node.value)

    def integer(self, node: Node, what: str, low: int, high: int) -> int:
        if not isinstance(node, ScalarNode) or node.tag != INT:
            self.fail(node, f"{what} must be an integer, got {describe(node)}")
        try:
            value = _CONSTRUCTOR.construct_yaml_int(node)
        except ValueError:  # more digits than Python converts
            self.fail(node, f"{what} must be from {low} to {high}, got a huge integer")
        if not low <= value <= high:
            self.fail(node, f"{what} must be from {low} to {high}, got {value}")
        return value

    def boolean(self, node: Node, what: str) -> bool:
        if not isinstance(node, ScalarNode) or node.tag != BOOL:
            self.fail(node, f"{what} must be true or false, got {describe(node)}")
        return bool(_CONSTRUCTOR.construct_yaml_bool(node))

    def number(self, node: Node, what: str, low: float, high: float) -> float:
        if not isinstance(node, ScalarNode) or node.tag not in (INT, FLOAT):
            self.fail(node, f"{what} must be a number, got {describe(node)}")
        try:
            if node.tag == INT:
                value = float(_CONSTRUCTOR.construct_yaml_int(node))
            else:
                value = _CONSTRUCTOR.construct_yaml_float(node)
        except (ValueError, OverflowError):
            value = math.inf
        if not (math.isfinite(value) and low <= value <= high):
            self.fail(node, f"{what} must be from {low:g} to {high:g}, got {node.value}")
        return value

    def string_map(self, node: Node, what: str) -> dict[str, str]:
        return {
            key.value: self.string(value, f"{what} value {key.value!r}")
            for key, value in self.entries(node, what).items()
        }
