"""Starting, probing and stopping the testbed's processes.

Each process runs in a session of its own with its pid in `<state>/run/<name>.pid`, so `down`
can end it and its children, and `up` can tell a live process from a stale pid after a crash.
"""
from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class Component:
    """One long-running process of the testbed and how to tell that it serves."""

    name: str
    argv: list[str]
    health: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    # Watches kube-apiserver: after an apiserver restart its client backs off for up to a minute.
    api_client: bool = False


def pid_of(run: Path, name: str) -> int | None:
    """The live pid recorded for `name`, or None (no file, or the process is gone)."""
    try:
        pid = int((run / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        return None if _stat(pid)[0] == "Z" else pid
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read
        return None


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first); the name may hold spaces."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def started_ticks(pid: int) -> int:
    """When `pid` started, in clock ticks since boot: tells which of two processes is older."""
    return int(_stat(pid)[19])


def start(run: Path, logs: Path, comp: Component) -> int:
    """Start `comp` detached from this process, logging to `<logs>/<name>.log`."""
    run.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(comp.env)
    with open(logs / f"{comp.name}.log", "ab") as log:
        proc = subprocess.Popen(comp.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    (run / f"{comp.name}.pid").write_text(str(proc.pid))
    (run / f"{comp.name}.argv").write_text(json.dumps(comp.argv))
    return proc.pid


def runs_as_configured(run: Path, comp: Component) -> bool:
    """True when the running `comp` was started with today's command line (not an older one)."""
    try:
        return json.loads((run / f"{comp.name}.argv").read_text()) == comp.argv
    except (FileNotFoundError, ValueError):
        return False


def _exited(pid: int) -> bool:
    """True once `pid` and all its threads are gone, and with them its listening sockets.

    A Go process's main thread shows as a zombie while its other threads still tear down and
    hold the process's ports, so a zombie counts as exited only when it is alone.
    """
    try:
        if _stat(pid)[0] != "Z":
            return False
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child: init reaps it
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except (FileNotFoundError, ProcessLookupError):
        return True


def stop(run: Path, name: str, grace: float = 10.0) -> bool:
    """End the process group of `name`: SIGTERM, then SIGKILL after `grace` seconds."""
    pid = pid_of(run, name)
    (run / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _exited(pid):
                return True
            time.sleep(0.1)
    return True


def https_ok(url: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> bool:
    """True when `url` answers 200 over TLS verified against the testbed CA."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """True when `url` answers a status below 500 over plain HTTP."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except OSError:
        return False


def wait_healthy(comp: Component, deadline: float, run: Path) -> None:
    """Block until `comp` is healthy; fail early if its process died."""
    while time.monotonic() < deadline:
        if comp.health():
            return
        if pid_of(run, comp.name) is None:
            raise RuntimeError(f"{comp.name} exited during start-up: see its log")
        time.sleep(0.2)
    raise RuntimeError(f"{comp.name} did not become healthy in time: see its log")
