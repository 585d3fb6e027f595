"""One retry policy for every loop that waits for something to come back.

A :class:`RetryPolicy` is a frozen description (first wait, cap, growth,
jitter); a :class:`Backoff` walks it: ``await backoff.wait()`` sleeps the next
delay, ``reset()`` after a success starts again from the first. Waits can be
cut short by an event (a stop, or a health probe that saw the dependency come
back), so a loop never sleeps through the moment it could resume.

The named policies below are the ones the product uses; the alert path's cap
is low on purpose: an alert must resume within about a second of its
dependency coming back, while the volume path may back off further.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with proportional jitter."""

    initial_s: float = 0.5
    cap_s: float = 10.0
    multiplier: float = 2.0
    #: each delay is drawn from ``delay * (1 ± jitter)``
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.cap_s < self.initial_s:
            raise ValueError("need 0 < initial_s <= cap_s")
        if self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need multiplier >= 1 and 0 <= jitter < 1")

    def backoff(self) -> Backoff:
        return Backoff(self)


class Backoff:
    """The state of one retry loop under a :class:`RetryPolicy`."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._base = policy.initial_s
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (jittered), and grow the base."""
        p = self.policy
        base = self._base
        self._base = min(base * p.multiplier, p.cap_s)
        self.attempts += 1
        return base * (1 - p.jitter + 2 * p.jitter * random.random())

    def reset(self) -> None:
        self._base = self.policy.initial_s
        self.attempts = 0

    async def wait(self, wake: asyncio.Event | None = None) -> float:
        """Sleep the next delay, or less if ``wake`` is set meanwhile; returns the delay."""
        delay = self.next_delay()
        if wake is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
        return delay


#: the alert path and its outbox relay: back within about a second of recovery
ALERT_PATH = RetryPolicy(initial_s=0.1, cap_s=1.0)
#: the telemetry/GPS path: may wait longer, it holds no one up
VOLUME_PATH = RetryPolicy(initial_s=0.2, cap_s=10.0)
#: waiting for a dependency at start-up, and clients reconnecting
CONNECT = RetryPolicy(initial_s=0.5, cap_s=10.0)
#: restarting a child process that exited
RESTART = RetryPolicy(initial_s=1.0, cap_s=30.0, jitter=0.1)
