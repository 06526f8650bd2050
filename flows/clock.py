"""A synthesised unit at a given clock: slack, fastest clock, energy per MAC, power, throughput.

From a :class:`psum.flows.synth.SynthResult` (critical path and the power proxy's energy per cycle)
and a clock period ``T`` in ns::

    slack      = T - delay                  (ns; negative: the unit misses the clock)
    f_max      = 1 / delay                  (the fastest clock, MHz)
    power      = E_active_cycle / T         (fJ / ns = µW, while it computes)
    idle power = E_idle_cycle / T           (µW, en=0: the clock alone, no gating)
    throughput = MACs per cycle / T         (GMAC/s)

The dynamic energy per MAC does not depend on the clock in this model: the activity is counted
with zero delay (no glitches), so a slower clock only spreads the same energy over more time. With a
Liberty library (``--liberty``) the cells' leakage adds ``P_leak * T / (MACs per cycle)`` to the
energy per MAC and ``P_leak`` to both powers (psum45 has no leakage figures). The figure is the one a clock-for-clock comparison needs (an accelerator running at
``T`` needs ``1 / (throughput)`` units per GMAC/s).
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["ClockReport", "at_clock", "check_clock_ns"]


@dataclasses.dataclass(frozen=True)
class ClockReport:
    """One unit at one clock period.

    Attributes
    ----------
    clock_ns : float
        The clock period asked for.
    slack_ns : float
        ``clock_ns - delay_ns``; negative when the unit misses the clock.
    met : bool
        ``slack_ns >= 0``.
    fmax_mhz : float
        The fastest clock the critical path allows (``1e3 / delay_ns``).
    energy_per_mac_fj : float
        Energy per MAC (clock-independent in this model, see the module docstring).
    power_uw, idle_power_uw : float
        Average power while computing and while idle (``en=0``), µW; leakage included.
    leakage_uw : float
        Leakage power (a Liberty library's ``cell_leakage_power``; 0 for psum45), µW.
    throughput_gmacs : float
        MACs per second at this clock, in 1e9.
    """

    clock_ns: float
    slack_ns: float
    met: bool
    fmax_mhz: float
    energy_per_mac_fj: float
    power_uw: float
    idle_power_uw: float
    throughput_gmacs: float
    leakage_uw: float = 0.0

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)


#: The shortest clock period psum takes, ns: 1 ps. Why a bound: no logic gate switches faster, and
#: below it the figures at the clock (MHz, uW) print as hundreds of digits.
MIN_CLOCK_NS = 1e-3


def check_clock_ns(clock_ns) -> float:
    """``clock_ns`` as a float, or ValueError if it is not a finite number of ns of at least
    :data:`MIN_CLOCK_NS`."""
    try:
        t = float(clock_ns)
    except (TypeError, ValueError):
        t = math.nan
    if isinstance(clock_ns, bool) or not (math.isfinite(t) and t > 0):
        raise ValueError(f"clock period must be a positive number of ns, not {clock_ns!r}")
    if t < MIN_CLOCK_NS:
        raise ValueError(f"clock period must be at least {MIN_CLOCK_NS:g} ns (1 ps: no logic gate switches faster), "
                         f"not {clock_ns!r}")
    return t


def at_clock(result, clock_ns) -> ClockReport:
    """Figures of ``result`` (a :class:`psum.flows.synth.SynthResult`) at clock period ``clock_ns``.

    Parameters
    ----------
    result : SynthResult
    clock_ns : float
        Clock period, ns (> 0).

    Returns
    -------
    ClockReport

    Raises
    ------
    ValueError
        If ``clock_ns`` is not a finite number of at least :data:`MIN_CLOCK_NS` ns.
    TypeError
        If ``result`` is not a synthesis result.
    """
    t = check_clock_ns(clock_ns)
    if not all(hasattr(result, k) for k in ("delay_ns", "power", "macs_per_cycle", "active_fj_per_cycle")):
        raise TypeError(f"result must be a psum.flows.synth.SynthResult (from synthesize), not {type(result).__name__}")
    delay = result.delay_ns
    slack = t - delay
    leak_uw = result.power.get("leakage_nw", 0.0) * 1e-3
    # Leakage energy of one cycle (µW x ns = fJ), shared by the MACs of that cycle.
    leak_per_mac = leak_uw * t / max(result.macs_per_cycle, 1e-12)
    return ClockReport(
        clock_ns=t,
        slack_ns=round(slack, 4),
        met=slack >= 0,
        fmax_mhz=round(1e3 / delay, 1) if delay > 0 else math.inf,
        energy_per_mac_fj=round(result.energy_per_mac_fj + leak_per_mac, 3),
        power_uw=round(result.active_fj_per_cycle / t + leak_uw, 3),
        idle_power_uw=round(result.idle_fj_per_cycle / t + leak_uw, 3),
        throughput_gmacs=round(result.macs_per_cycle / t, 4),
        leakage_uw=round(leak_uw, 4),
    )
