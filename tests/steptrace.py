"""One check shared by the float step tests (a test module must not import another one).

``check_step_trace``: run a unit's Amaranth simulation on a stimulus and compare the accumulator
trace with the expected codes, naming the first mismatch's operands.
"""

from __future__ import annotations

import pytest

from psum.hw.verify import amaranth_trace


def check_step_trace(spec, stim: dict, want: list) -> int:
    """Simulate ``spec``'s unit on ``stim`` (port -> uint64 array) and fail on the first cycle whose
    accumulator differs from ``want`` (``None``: not checked); return ``len(want)``."""
    got = [int(v) for v in amaranth_trace(spec, stim)]
    bad = [t for t in range(len(want)) if want[t] is not None and got[t] != want[t]]
    if bad:
        t = bad[0]
        pytest.fail(f"{len(bad)} mismatches of {len(want)}; first: acc {hex(want[t - 1])} a {hex(int(stim['a'][t]))} "
                    f"b {hex(int(stim['b'][t]))} expected {hex(want[t])}, got {hex(got[t])}")
    return len(want)
