"""Fixtures shared by the unit tests of the container files (test_dockerfile.py, test_container_scripts.py)."""

from __future__ import annotations

import pytest

from tests.unit.dockerfile_model import DOCKERFILE, Dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    """The repo's Dockerfile, parsed once per test module."""
    return Dockerfile(DOCKERFILE.read_text())
