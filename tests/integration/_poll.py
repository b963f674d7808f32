"""Test-side polling of cheap reads (the modules under test watch; the tests only check)."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60,
             explain: Optional[Callable[[], str]] = None) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` on timeout.

    `explain` describes the state seen last, so a failure says why it waited in vain.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(0.5)
