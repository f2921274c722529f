"""Process and port helpers shared by the tests that start servers or scripts: free ports, finding processes by
their command line, and killing what is left of them."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterable
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_mentioning(text: str) -> list[int]:
    """The pids of every live (not zombie) process, other than this one, whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def kill_process_groups(pids: Iterable[int]) -> None:
    """SIGKILL the process group of each pid; a process already gone is skipped."""
    for pid in pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
