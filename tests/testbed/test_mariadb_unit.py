"""The Model Registry's MariaDB, made and run for real in a scratch directory."""
from __future__ import annotations

import os
import shutil
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testbed"))

import mariadb  # noqa: E402
from processes import Component, pid_of, start, stop, wait_healthy  # noqa: E402

BINS = mariadb.binaries()
pytestmark = pytest.mark.skipif(BINS is None, reason=f"MariaDB is not installed: {mariadb.INSTALL_HINT}")


@pytest.fixture
def state() -> Iterator[Path]:
    """A state directory the `mysql` user can reach (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="testbed-db-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_database_is_made_once_keeps_its_password_and_serves_on_127_0_0_1(state: Path) -> None:
    layout = mariadb.Layout(state)
    log = state / "mariadb.log"
    assert layout.ensure(BINS, log) is True
    password = layout.password()
    assert stat.S_IMODE(layout.password_file.stat().st_mode) == 0o600
    assert (layout.data / mariadb.DATABASE).is_dir() and not (state / "mariadb" / "data.tmp").exists()
    if os.geteuid() == 0:
        assert layout.data.stat().st_uid == layout.owner().pw_uid
    assert layout.ensure(BINS, log) is False
    assert layout.password() == password

    port = free_port()
    comp = Component("db", layout.server_argv(BINS, port), lambda: mariadb.ready(port))
    start(state / "run", state / "logs", comp)
    try:
        wait_healthy(comp, time.monotonic() + 60, state / "run")
        server_log = (state / "logs" / "db.log").read_text()
        assert f"port: {port}" in server_log and "ready for connections" in server_log
        assert "Server socket created on IP: '127.0.0.1'" in server_log  # and on no other address
    finally:
        stop(state / "run", "db")
    assert pid_of(state / "run", "db") is None
    assert "Shutdown complete" in (state / "logs" / "db.log").read_text()
    assert not mariadb.ready(port)


def test_a_half_made_data_directory_is_made_again(state: Path) -> None:
    layout = mariadb.Layout(state)
    (state / "mariadb" / "data.tmp").mkdir(parents=True)
    (state / "mariadb" / "data.tmp" / "leftover").write_text("from a crash during mariadb-install-db")
    assert layout.ensure(BINS, state / "mariadb.log") is True
    assert (layout.data / mariadb.DATABASE).is_dir() and not (layout.data / "leftover").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_state_directory_mysql_cannot_reach_is_named(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(RuntimeError, match="the `mysql` user cannot write to .*searchable by others"):
        mariadb.Layout(private / "state").ensure(BINS, tmp_path / "mariadb.log")


def test_ready_needs_a_server_greeting_not_just_an_open_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not mariadb.ready(port)  # accepts, says nothing: not a database
