"""The in-process moving window: the Redis script's rules on this process's clock."""

from __future__ import annotations

from tenantrag.backends.ratelimit import WINDOW_S, MemoryWindows


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_down_refuses_at_the_limit_and_keeps_tenants_apart() -> None:
    """Three pass with falling `remaining`, then refusals; another tenant is untouched."""
    windows = MemoryWindows(clock=Clock())
    decisions = [windows.hit("acme", 3) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert all(d.reset_s == WINDOW_S for d in decisions)
    other = windows.hit("globex", 3)
    assert (other.allowed, other.remaining) == (True, 2)


def test_a_slot_frees_when_the_oldest_counted_request_leaves() -> None:
    """Refusals are not counted; the window moves, it does not reset all at once."""
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    windows.hit("acme", 2)
    clock.now += 20
    windows.hit("acme", 2)
    clock.now += 10
    refused = windows.hit("acme", 2)
    assert not refused.allowed and refused.reset_s == 30  # the first leaves 60 s after it came
    clock.now += 30
    assert windows.hit("acme", 2).allowed  # the first left; the refusal took no slot
    assert not windows.hit("acme", 2).allowed


def test_reset_names_the_right_request_after_the_limit_is_lowered() -> None:
    """Three counted requests 50, 40 and 10 s ago and a limit of 1: a slot frees in 50 s."""
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    for age in (50, 40, 10):
        clock.now = 1000.0 - age
        windows.hit("acme", 10)
    clock.now = 1000.0
    decision = windows.hit("acme", 1)
    assert not decision.allowed and decision.remaining == 0
    assert decision.reset_s == 50
    assert not windows.hit("acme", 0).allowed  # a limit of 0 admits nothing, and names 60 s


def test_idle_windows_are_forgotten() -> None:
    """A tenant whose requests all left the window holds no memory after the next sweep."""
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    windows.hit("gone", 5)
    clock.now += WINDOW_S + 1
    for _ in range(4096):
        windows.hit("busy", 10**9)
    assert "gone" not in windows._windows
    assert "busy" in windows._windows
