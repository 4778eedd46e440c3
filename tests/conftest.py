"""Suite-wide settings: hypothesis without wall-clock deadlines (shared CI machines are noisy)."""

import contextlib

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


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
