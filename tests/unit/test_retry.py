"""The one retry policy: growth, cap, jitter, reset, early wake."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.retry import ALERT_PATH, RetryPolicy


@given(
    initial=st.floats(0.01, 5),
    factor=st.floats(1, 4),
    jitter=st.floats(0, 0.9),
    steps=st.integers(1, 30),
)
def test_delays_grow_to_the_cap_within_the_jitter(
    initial: float, factor: float, jitter: float, steps: int
) -> None:
    policy = RetryPolicy(initial_s=initial, cap_s=initial * 10, multiplier=factor, jitter=jitter)
    backoff = policy.backoff()
    base = initial
    for _ in range(steps):
        delay = backoff.next_delay()
        assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
        base = min(base * factor, policy.cap_s)
    assert backoff.attempts == steps


def test_reset_starts_again_from_the_first_delay() -> None:
    backoff = RetryPolicy(initial_s=1, cap_s=8, jitter=0).backoff()
    assert [backoff.next_delay() for _ in range(5)] == [1, 2, 4, 8, 8]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_the_alert_path_resumes_within_about_a_second() -> None:
    backoff = ALERT_PATH.backoff()
    assert max(backoff.next_delay() for _ in range(50)) <= 1.0 * (1 + ALERT_PATH.jitter)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_s": 0}, {"initial_s": 2, "cap_s": 1}, {"multiplier": 0.5}, {"jitter": 1.0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        RetryPolicy(**kwargs)


async def test_a_wait_ends_early_when_woken() -> None:
    backoff = RetryPolicy(initial_s=30, cap_s=30).backoff()
    wake = asyncio.Event()
    waiting = asyncio.create_task(backoff.wait(wake))
    await asyncio.sleep(0)
    wake.set()
    await asyncio.wait_for(waiting, 5)
