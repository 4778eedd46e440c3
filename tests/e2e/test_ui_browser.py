"""The web UI in a real browser: the built UI served by a real all-in-one holding seeded traces,
driven by Playwright (playwright-core) in Debian's Chromium. The browser tests themselves are the
`ui/e2e/*.test.mjs` files (node's test runner); this runs them and shows their output on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import ui_seed
from tests.e2e.server import ROOT, Server, start

UI_BUILD = ROOT / "src" / "tracemesh" / "query" / "ui"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def ui_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, object]]]:
    if not (UI_BUILD / "index.html").exists():
        pytest.fail("the UI is not built: run `make ui` (make test does)")
    srv = start(Path(tmp_path_factory.mktemp("ui")), "--query.ui-dir", str(UI_BUILD))
    seeded = ui_seed.seed(srv.otlp_http)
    yield srv, seeded
    assert srv.stop() == 0, srv.log()


def browser_tests() -> list[str]:
    return sorted(p.name for p in (ROOT / "ui" / "e2e").glob("*.test.mjs"))


@pytest.mark.timeout(900)  # a browser test file opens 40,000-span traces several times
@pytest.mark.parametrize("name", browser_tests())
def test_in_browser(ui_server: tuple[Server, dict[str, object]], name: str) -> None:
    if not Path(CHROMIUM).exists() or not shutil.which("node"):
        pytest.fail(f"browser tests need {CHROMIUM} and node: `make browser` installs Chromium")
    srv, seeded = ui_server
    env = {**os.environ, "TRACEMESH_URL": srv.query, "TRACEMESH_SEED": json.dumps(seeded),
           "TRACEMESH_RESULTS": str(ROOT / "bench" / "out")}  # fmt: skip
    # Its own process group: node runs each file in a child process that starts Chromium, and a
    # run that is stopped must not leave those behind.
    run = subprocess.Popen(
        ["node", "--test", "--test-reporter=spec", f"e2e/{name}"],
        cwd=ROOT / "ui",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = run.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        out, err = run.communicate()
        pytest.fail(f"{name} did not finish in 840 s; it printed:\n{out}\n{err}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # whatever it started and left running
    assert run.returncode == 0, f"{name} failed:\n{out}\n{err}"
