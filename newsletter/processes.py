"""Processes across machines: which process-id space this one lives in, and whether a process
another worker recorded (host, pid, namespace) has ended.
"""

from __future__ import annotations

import os
import socket


def pid_namespace() -> int:
    """Which process-id space this process lives in (containers on one host each have one);
    0 where the system does not say (no /proc)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def process_is_gone(host: str, pid: int, namespace: int) -> bool:
    """Whether the process `pid` of `host`, in pid namespace `namespace`, has ended, as far as
    this process can tell: only one of this machine and of this namespace can be looked up (a
    pid in another container's namespace names another process, or none, here). Any other
    counts as alive."""
    if host != socket.gethostname() or namespace == 0 or namespace != pid_namespace():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: someone else's process by that number, alive
        return False
    return False
