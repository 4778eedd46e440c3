"""Fixtures for the tests against a real Kubernetes control plane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.kube.control_plane import ControlPlane, shared_control_plane
from tests.integration.kube.operator_process import OperatorProcess


@pytest.fixture(scope="session")
def plane() -> ControlPlane:
    return shared_control_plane()


@pytest.fixture(scope="module")
def operator(plane: ControlPlane) -> Iterator[OperatorProcess]:
    """An operator watching the whole cluster, for one test module."""
    process = OperatorProcess(plane)
    process.start()
    yield process
    process.stop()
