"""Start-up checks that the worker's dependencies will not lose what it commits.

PostgreSQL must run with ``fsync`` and ``synchronous_commit`` on: otherwise a
committed alert (and the Kafka offset stored with it) can vanish in a crash
while the broker believes it was consumed. The worker refuses to start unless
the operator explicitly accepts the risk (``ERIOP_ALLOW_UNSAFE_DATABASE=true``),
and even then says so loudly.
"""

from __future__ import annotations

import logging

import asyncpg

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

SAFE_SYNCHRONOUS_COMMIT = frozenset({"on", "remote_write", "remote_apply", "local"})


def durability_problems(fsync: str, synchronous_commit: str) -> list[str]:
    problems = []
    if fsync != "on":
        problems.append(f"fsync is {fsync}")
    if synchronous_commit not in SAFE_SYNCHRONOUS_COMMIT:
        problems.append(f"synchronous_commit is {synchronous_commit}")
    return problems


async def check_database(conn: asyncpg.Connection, *, allow_unsafe: bool) -> list[str]:
    fsync = await conn.fetchval("SHOW fsync")
    sync = await conn.fetchval("SHOW synchronous_commit")
    problems = durability_problems(str(fsync), str(sync))
    if problems and not allow_unsafe:
        raise ConfigError(
            "PostgreSQL may lose committed rows (" + ", ".join(problems) + "); turn these on, "
            "or set ERIOP_ALLOW_UNSAFE_DATABASE=true to run anyway (never in production)"
        )
    for p in problems:
        log.warning("UNSAFE DATABASE: %s: a crash can lose committed alerts", p)
    return problems
