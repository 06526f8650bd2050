"""psum.hw.verify: check generated RTL bit for bit against the golden model.

One module per job:

=================  =============================================================================
module             job
=================  =============================================================================
``stimulus``       per-cycle stimulus, its columns generated from the unit's port contract
``streams``        a dataset source: 3x3 convolution streams over real digits (needs scikit-learn)
``check``          the trace check: vectorised :func:`psum.golden.mac_step` (sequential units,
                   pipelined ones through :func:`~psum.hw.verify.check.delayed` inputs) or a model,
                   and the expected stream of the in-simulator check
``model``          cycle models of the units (seq, chunk, ilv, mta, tree, block): the expected outputs
``harness``        the Verilog harness ``psum_mac_tb`` (stimulus player, in-simulator check) and its files
``runner``         the cocotb + Verilator/Icarus run, :func:`simulate`
``amaranth_sim``   the unit in Amaranth's Python simulator, :func:`amaranth_trace`
``cocotb_tb``      the cocotb test module (loaded by the simulator, not imported here)
=================  =============================================================================

The names below are imported on first use (PEP 562): the cocotb test module, a submodule, is
imported by every simulator process, whose start-up then pays for no module it does not need.
"""

import importlib

_WHERE = {"simulate": "runner", "SimResult": "runner", "ICARUS_HINT": "runner", "VERILATOR_HINT": "runner",
          "SIMULATORS": "runner", "default_simulator": "runner", "make_stimulus": "stimulus",
          "columns": "stimulus", "input_ports": "stimulus", "check_trace": "check",
          "harness_verilog": "harness", "amaranth_trace": "amaranth_sim",
          "conv_streams_from_digits": "streams"}

__all__ = ["simulate", "SimResult", "make_stimulus", "columns", "input_ports", "check_trace",
           "harness_verilog", "amaranth_trace", "conv_streams_from_digits", "ICARUS_HINT", "VERILATOR_HINT",
           "SIMULATORS", "default_simulator"]


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
