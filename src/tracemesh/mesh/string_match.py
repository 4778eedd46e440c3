"""One string condition of a route match (Istio's StringMatch): exact, prefix, regex, or present.

Regexes are Python `re` patterns compiled once, applied with full-match semantics as Envoy applies
RE2 (`.*Netscape.*` to match a substring, not `Netscape`; `.` skips newlines in both). Python's
engine backtracks where RE2 does not, so the pattern length is capped; the patterns come from the
operator's file, the subjects (headers, paths) from the network and are capped by the HTTP parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

MAX_REGEX_LENGTH = 1024


class MatchKind(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"
    PRESENT = "present"  # Istio: a header match with no value only checks the header is there


def compile_regex(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; ValueError saying what is wrong when it is too long or invalid."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(
            f"regex is {len(pattern)} characters long, the limit is {MAX_REGEX_LENGTH}"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from None
    except RecursionError:  # sre_parse recurses per nested group
        raise ValueError(f"bad regex {pattern[:40]!r}...: nested too deeply") from None


@dataclass(frozen=True, slots=True)
class StringMatch:
    """`kind` applied to `value`; construction compiles a regex and raises ValueError if bad."""

    kind: MatchKind
    value: str = ""
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind is MatchKind.REGEX and self.pattern is None:
            object.__setattr__(self, "pattern", compile_regex(self.value))

    def matches(self, text: str | None) -> bool:
        """Whether `text` satisfies the condition; None (absent) satisfies none of them."""
        if text is None:
            return False
        if self.kind is MatchKind.EXACT:
            return text == self.value
        if self.kind is MatchKind.PREFIX:
            return text.startswith(self.value)
        if self.kind is MatchKind.REGEX:
            assert self.pattern is not None
            return self.pattern.fullmatch(text) is not None
        return True
