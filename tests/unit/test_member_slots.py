"""Static group membership names: stable over restarts, unique side by side."""

from __future__ import annotations

import uuid

from pipeline.runtime.supervisor import claim_member_slot


def test_workers_side_by_side_get_distinct_slots_and_a_restart_gets_its_own_back() -> None:
    group = f"test-{uuid.uuid4().hex}"
    first, first_lock = claim_member_slot(group)
    second, second_lock = claim_member_slot(group)
    assert (first, second) == (0, 1)
    first_lock.close()  # the first worker stops (or is killed)
    again, again_lock = claim_member_slot(group)
    assert again == 0
    other, other_lock = claim_member_slot(f"{group}-other")
    assert other == 0  # slots are per consumer group
    for lock in (second_lock, again_lock, other_lock):
        lock.close()
