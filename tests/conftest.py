"""Suite-wide settings: hypothesis without wall-clock deadlines (shared CI machines are noisy),
and a tier marker on every test from its folder (`make unit` runs the fast tiers)."""

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI: more examples, and the same ones on every run, so a failure reproduces on the next run.
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=300,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

TIERS = ("unit", "contract", "integration", "e2e", "fuzz")
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`tests/<tier>/...` gets the marker `<tier>`; a folder outside the tiers gets `unit`."""
    for item in items:
        try:
            folder = Path(item.path).relative_to(_TESTS).parts[0]
        except ValueError:
            continue
        item.add_marker(folder if folder in TIERS else "unit")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fetch and boot the test search node before the first test that needs it, so a cold
    download and a slow boot count against no single test's timeout."""
    if any("elasticsearch" in item.nodeid for item in session.items):
        from tests.support.search_node import NodeError, shared_node

        # on failure each test that needs the node fails with the reason; the others still run
        with contextlib.suppress(NodeError):
            shared_node()
    if any("integration/kube/" in item.nodeid for item in session.items):
        from tests.integration.kube.control_plane import ControlPlaneError, shared_control_plane

        # a first run builds the binaries (~10 minutes); each kube test reports a failure
        with contextlib.suppress(ControlPlaneError):
            shared_control_plane()


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.support.search_node import stop_shared_node

    stop_shared_node()
    from tests.integration.kube.control_plane import stop_shared_control_plane

    stop_shared_control_plane()
