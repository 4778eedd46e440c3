"""The short fuzz campaign of every test run: each C entry point against its Python reference,
at least 10,000 inputs from the committed corpus and its mutations (`make fuzz` runs the long,
coverage-guided one under AddressSanitizer + UndefinedBehaviorSanitizer)."""

from __future__ import annotations

import struct

import pytest

from tests.fuzz.driver import corpus, run
from tests.fuzz.targets import TARGETS
from tracemesh.storage.disk import tags

EXECUTIONS = 10_000
pytestmark = pytest.mark.fuzz


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_c_path_agrees_with_the_reference(name: str) -> None:
    seeds = corpus(name)
    assert seeds, f"no committed corpus for {name}: run python -m tests.fuzz.seeds"
    stats = run(TARGETS[name], seeds, executions=EXECUTIONS, seconds=240, seed=17)
    assert not stats.failures, "\n\n".join(stats.failures)
    assert stats.executions >= EXECUTIONS, f"only {stats.executions} inputs in {stats.seconds}s"


def test_sort_index_leaves_out_what_precedes_the_first_batch() -> None:
    """offsets[0] > 0 once made the C sort return uninitialised memory."""
    module = pytest.importorskip("tracemesh.accel._span_tags")
    hashes, offsets = struct.pack("<III", 7, 5, 9), struct.pack("<II", 1, 3)
    assert module.sort_index(hashes, offsets) == tags.sort_index_reference(hashes, offsets)
    assert module.sort_index(hashes, offsets)[0] == struct.pack("<II", 5, 9)


def test_sort_index_refuses_a_trailing_partial_hash_as_the_reference_does() -> None:
    module = pytest.importorskip("tracemesh.accel._span_tags")
    hashes, offsets = struct.pack("<III", 7, 5, 9) + b"\x01", struct.pack("<II", 0, 3)
    with pytest.raises(ValueError):
        tags.sort_index_reference(hashes, offsets)
    with pytest.raises(ValueError):
        module.sort_index(hashes, offsets)
