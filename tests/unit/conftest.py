"""Fixtures shared by unit tests: the container files (test_dockerfile.py, test_container_scripts.py), and a scripted
container behind the SageMaker-runtime stand-in (test_runtime_standin.py, test_lambda_function.py)."""

from __future__ import annotations

import pytest

from segserve.client.standin import StandInConfig
from tests.client_helpers import ScriptedContainer, running_standin
from tests.unit.dockerfile_model import DOCKERFILE, Dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    """The repo's Dockerfile, parsed once per test module."""
    return Dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def container() -> ScriptedContainer:
    """An HTTP server on 127.0.0.1 answering /invocations as each test scripts it."""
    container = ScriptedContainer()
    yield container
    container.close()


@pytest.fixture(scope="module")
def standin(container):
    """The SageMaker-runtime stand-in in front of `container`, serving endpoints segserve and other-endpoint."""
    with running_standin(StandInConfig(container.url, ("segserve", "other-endpoint"))) as server:
        yield server
