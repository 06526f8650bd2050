"""psum.hw.verify: check generated RTL bit for bit against the golden model.

Stimulus, the Verilog harness, the cocotb runner (Icarus / Verilator) and the Amaranth simulator
driver live in :mod:`.sim`; :mod:`.cocotb_tb` is the cocotb test module.
"""
