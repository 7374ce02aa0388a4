"""`ingest health`: exit 0 when the daemon is healthy, else 1 with one line saying why.

It is a Docker HEALTHCHECK (run every 30 s) and a monitoring probe, so it stays small: the configuration,
one short read of the database through the store interface, and `services.health`, the rule `GET /healthz`
answers with. No web, scheduler or plotting stack is imported (tests/integration/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from ingest.commands import open_store, settings
from ingest.services import health


def cmd_health(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    store = open_store(s, create=False)
    try:
        answer = health(store, [fs.name for fs in s.feeds if fs.enabled], datetime.now(UTC), s.http.stale_after_s)
    finally:
        store.close()
    if not answer.healthy:
        print(f"ingest: unhealthy: {answer.describe()}", file=sys.stderr)
        return 1
    print(answer.describe())
    return 0
