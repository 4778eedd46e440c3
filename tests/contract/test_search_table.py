"""Contract: every case of the query table in fixtures.py against one shared data set.

The data set is written once per backend (in three write calls, so that it spans batches) and
read by every case; a case needing a capability the backend lacks is skipped with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.contract import fixtures
from tests.contract.conftest import BACKENDS
from tests.contract.harness import Backend
from tests.contract.traces import trace_id, trace_ids

CASES = fixtures.cases()


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    loop = asyncio.new_event_loop()
    storage = BACKENDS[request.param](tmp_path_factory.mktemp(request.param))
    loop.run_until_complete(storage.start())
    backend = Backend(storage, loop)
    spans = fixtures.build().spans
    third = len(spans) // 3
    for part in (spans[:third], spans[third : 2 * third], spans[2 * third :]):
        backend.write(part)
    yield backend
    loop.run_until_complete(storage.close())
    loop.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_query(loaded: Backend, case: fixtures.Case) -> None:
    capabilities = loaded.storage.capabilities
    for needed in case.needs:
        if not getattr(capabilities, needed):
            pytest.skip(f"{loaded.storage.name} lacks {needed}")
    if case.literal and capabilities.tag_regex:
        pytest.skip(f"{loaded.storage.name} matches tag values as regular expressions")

    found = trace_ids(loaded.find(case.query))

    expected = [trace_id(n) for n in case.expected]
    if case.ordered:
        assert found == expected
    else:
        assert sorted(found) == sorted(expected)
        assert len(found) == len(set(found)), "a trace is returned twice"
