"""benchmarks/bench_train_profile.py's clock (issue 28): nested phases count exclusive time, so the rows
sum to the wall clock; its timed wrappers end their phase on an exception and are put back. Fake clocks,
no training."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def PhaseClock(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_train_profile import PhaseClock

    return PhaseClock


def ticks(*times):
    return iter(times).__next__


def test_nested_phases_count_exclusive_time(PhaseClock):
    clock = PhaseClock(clock=ticks(0, 1, 3, 4, 7, 10, 12, 15), base=("s", "base"))
    clock.enter("outer", "A")  # t=1: base ran 1 s
    clock.enter("inner")  # t=3: outer 2 s; inner inherits section A
    clock.exit()  # t=4: inner 1 s
    clock.enter("inner")  # t=7: outer 3 s more
    clock.exit()  # t=10: inner 3 s more
    clock.exit()  # t=12: outer 2 s more
    assert clock.wall() == 15  # base 3 s more
    assert clock.seconds == {("s", "base"): 4, ("A", "outer"): 7, ("A", "inner"): 4}
    assert clock.calls == {("A", "outer"): 1, ("A", "inner"): 2}


def test_a_phase_inside_itself_is_one_call_and_rebase_moves_the_rest(PhaseClock):
    clock = PhaseClock(clock=ticks(0, 2, 5, 6, 9, 10, 14), base=("startup", "rest"))
    clock.enter("x")  # t=2
    clock.enter("x")  # t=5: the same phase again (a Compose inside a Compose)
    clock.exit()  # t=6
    clock.exit()  # t=9
    clock.rebase(("unaccounted", "between"))  # t=10: startup ends
    assert clock.wall() == 14
    assert clock.seconds == {("startup", "rest"): 3, ("startup", "x"): 7, ("unaccounted", "between"): 4}
    assert clock.calls == {("startup", "x"): 1}


def test_wrap_times_what_it_should_and_restore_puts_the_originals_back(PhaseClock):
    class Net:
        def forward(self, x):
            if x < 0:
                raise ValueError("negative")
            return 2 * x

    original, net = Net.forward, Net()
    clock = PhaseClock(clock=itertools.count().__next__, base=("s", "base"))
    seen = []
    clock.wrap(Net, "forward", "forward", section=lambda args: f"S{args[1]}", when=lambda args: args[1] != 0,
               after=seen.append)
    assert net.forward(3) == 6 and net.forward(0) == 0  # x == 0: not timed
    with pytest.raises(ValueError):
        net.forward(-1)
    assert clock.stack == [("s", "base")]  # the exception ended its phase
    assert clock.calls == {("S3", "forward"): 1, ("S-1", "forward"): 1} and seen == [6]
    clock.wrap(net, "forward", "instance")  # an instance: the wrapper is its own attribute
    assert net.forward(1) == 2 and clock.calls[("s", "instance")] == 1 and clock.calls[("S1", "forward")] == 1
    wall = clock.wall()  # charges the time up to now
    assert sum(clock.seconds.values()) == wall
    clock.restore()
    assert Net.forward is original and "forward" not in vars(net) and clock.patches == []
