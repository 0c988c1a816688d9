"""The leases the scheduler takes: one per job while it runs, one for the leader, and who holds them."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

LEADER_KEY = "scheduler:leader"  # a key no environment can have (env names have no colon)
JOB_LEASE_TTL = timedelta(minutes=15)  # renewed every third of it while the job runs


def job_lease_key(name: str) -> str:
    return f"job:{name}"


def replica_id() -> str:
    """Who holds a lease: host, process and a random tag (a restarted process is a new holder)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
