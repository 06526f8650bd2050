"""psum.hw.verify: check generated RTL bit for bit against the golden model.

One module per job:

=================  =============================================================================
module             job
=================  =============================================================================
``stimulus``       per-cycle stimulus, its columns generated from the unit's port contract
``streams``        a dataset source: 3x3 convolution streams over real digits (needs scikit-learn)
``check``          the trace check: vectorised :func:`psum.golden.mac_step` (sequential units,
                   pipelined ones through :func:`~psum.hw.verify.check.delayed` inputs) or a model
``model``          cycle models of the order units (chunk, ilv, mta): the expected outputs
``harness``        the Verilog stimulus player ``psum_mac_tb`` and its text files
``runner``         the cocotb + Icarus run, :func:`simulate`
``amaranth_sim``   the unit in Amaranth's Python simulator, :func:`amaranth_trace`
``cocotb_tb``      the cocotb test module (loaded by the simulator, not imported here)
=================  =============================================================================
"""

from .amaranth_sim import amaranth_trace
from .check import check_trace
from .harness import harness_verilog
from .runner import ICARUS_HINT, SIMULATORS, VERILATOR_HINT, SimResult, default_simulator, simulate
from .stimulus import columns, input_ports, make_stimulus
from .streams import conv_streams_from_digits

__all__ = ["simulate", "SimResult", "make_stimulus", "columns", "input_ports", "check_trace",
           "harness_verilog", "amaranth_trace", "conv_streams_from_digits", "ICARUS_HINT", "VERILATOR_HINT",
           "SIMULATORS", "default_simulator"]
