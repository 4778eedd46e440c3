from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start(Path(tmp_path_factory.mktemp("tracemesh")))
    yield srv
    code = srv.stop()
    assert code == 0, f"tracemesh exited with {code}:\n{srv.log()}"
