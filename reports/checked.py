"""The report's checked simulations: every unit it costs is first run against the golden model.

One function, :func:`checked_sim`, serves both report stages that need it (the per-MAC hardware
stage of :mod:`psum.reports.report` and the iso-throughput stage of :mod:`psum.reports.iso`):
simulate the generated Verilog of a unit in cocotb + Icarus (or Verilator,
:func:`psum.hw.verify.simulate`) on the directed and random stimulus, plus real operand streams
when the caller has them; append the verdict to the report's ``sim.jsonl``; reuse a verdict on
the next run; raise on any mismatch.

Why the Verilog digest is part of the key (:data:`SIM_KEY`): a verdict belongs to the RTL it was
measured on. The spec alone does not name that RTL: when a generator changes (a leaner datapath,
a fixed bug), the same spec yields other Verilog, and a stored "0 mismatches" of the old RTL says
nothing about the new one. The synthesis cache keys on the same digest
(:func:`psum.flows.synth.rtl_digest`), so the area, delay and energy in a report and the check
beside them always describe one netlist. Rows written before the digest existed have no ``rtl``
field: their key never matches, so those units are simulated again, never reused.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SIM_KEY", "SIM_REQUIRED", "sim_results", "checked_sim"]

#: The fields that identify a stored verdict: the canonical spec text, the implementation
#: (:class:`psum.hw.impl.MacImpl` text), the cycles and seed of the stimulus, the operand streams'
#: origin (``layer``: a network layer's name, or ``"random"`` for the directed + random stimulus
#: alone) and ``rtl``, the sha256 prefix of the generated Verilog.
SIM_KEY = ("spec", "impl", "cycles", "seed", "layer", "rtl")

#: Fields every stored row must hold (a row without them makes the file unreadable, one line).
SIM_REQUIRED = ("spec", "cycles", "seed", "checked", "mismatches", "first_mismatch")


def sim_results(out):
    """The report folder ``out``'s ``sim.jsonl`` as a :class:`psum.resultsfile.ResultsFile` keyed by
    :data:`SIM_KEY`."""
    from psum.resultsfile import ResultsFile

    return ResultsFile(Path(out) / "sim.jsonl", SIM_KEY, required=SIM_REQUIRED)


def checked_sim(sims, spec, *, impl=None, cycles: int, seed: int = 0, layer: str = "random",
                streams_for=None) -> dict:
    """Check the unit of ``spec`` (built as ``impl``) against the golden model, once per RTL.

    Parameters
    ----------
    sims : psum.resultsfile.ResultsFile
        The report's verdicts (:func:`sim_results`).
    spec : MacSpec or str
    impl : MacImpl or str, optional
        The implementation (default: the plain unit).
    cycles : int
        Stimulus cycles (the directed and random stimulus of :func:`psum.hw.verify.simulate`).
    seed : int
    layer : str
        Where the extra operand streams come from (part of the key): a layer name, or
        ``"random"`` without streams.
    streams_for : callable, optional
        ``streams_for(spec_text)`` -> operand streams replayed on top of the stimulus; called only
        when the unit is simulated (recording streams costs a network pass).

    Returns
    -------
    dict
        The stored row: the :data:`SIM_KEY` fields, ``checked`` (cycles compared),
        ``mismatches`` (0), ``first_mismatch`` (None) and ``simulator``.

    Raises
    ------
    psum.errors.PsumError
        The RTL differs from the golden model (one line naming the first cycle and the command
        that shows the details), or a tool failed.
    """
    from psum.errors import PsumError
    from psum.flows.synth import rtl_digest
    from psum.golden import MacSpec
    from psum.hw import module_name
    from psum.hw.impl import MacImpl
    from psum.hw.verify import simulate
    from psum.paths import cache_dir

    spec = MacSpec.parse(spec) if isinstance(spec, str) else spec
    impl = MacImpl.parse(impl)
    key = dict(spec=str(spec), impl=str(impl), cycles=cycles, seed=seed, layer=layer, rtl=rtl_digest(spec, impl))
    row = sims.get(**key)
    if row is None:
        # Build in psum's cache root, never in the working directory (the report's folder is the
        # only thing a report run leaves there).
        res = simulate(spec, cycles=cycles, seed=seed, impl=impl,
                       streams=streams_for(str(spec)) if streams_for is not None else None,
                       build_dir=cache_dir("sim", module_name(spec, impl)))
        row = dict(key, checked=res.cycles_checked, mismatches=res.mismatches, first_mismatch=res.first_mismatch,
                   simulator=getattr(res, "simulator", ""))
        sims.append(row)
    if row["mismatches"]:
        at = "" if impl.is_default else f" ({impl})"
        opt = "" if impl.is_default else f" --impl {impl}"
        raise PsumError(f"RTL of {spec}{at} differs from the golden model at cycle "
                        f"{(row['first_mismatch'] or {}).get('cycle')}; run psum sim '{spec}'{opt} for details")
    return row
