"""benchmarks/load_test.py stays bounded and on this machine: its limits and address check, and its budget."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "load_test", Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py")
load_test = importlib.util.module_from_spec(_SPEC)
sys.modules["load_test"] = load_test  # dataclasses look their module up there
_SPEC.loader.exec_module(load_test)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080",
                                 "http://127.8.9.10:1"])
def test_loopback_urls_are_accepted(url):
    assert load_test.parse_args(["--url", url, "--management", url]).url == url


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://192.168.1.2", "http://example.com:8080",
                                 "http://8.8.8.8", "http://0.0.0.0:8080"])
def test_other_addresses_are_refused(url, capsys):
    with pytest.raises(SystemExit):
        load_test.parse_args(["--url", url])
    assert "not a loopback address" in capsys.readouterr().err


def test_the_management_address_must_be_loopback_too(capsys):
    with pytest.raises(SystemExit):
        load_test.parse_args(["--url", "http://127.0.0.1:8080", "--management", "http://10.1.1.1:8081"])
    assert "10.1.1.1" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--clients", "0"], ["--clients", "33"], ["--duration", "901"],
                                    ["--duration", "0"], ["--requests", "20001"], ["--mix", "sam2=0"],
                                    ["--mix", "everything=3"]])
def test_counts_and_time_are_bounded(option):
    with pytest.raises(SystemExit):
        load_test.parse_args(["--url", "http://127.0.0.1:8080", *option])


def test_the_budget_stops_at_the_request_count():
    budget = load_test.Budget(requests_left=3, seconds=60)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]


def test_the_budget_stops_at_the_deadline():
    budget = load_test.Budget(requests_left=1000, seconds=0.05)
    assert budget.take()
    time.sleep(0.06)
    assert not budget.take()
