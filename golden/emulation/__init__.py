"""psum.golden.emulation: whole PyTorch networks with every partial sum rounded as the MAC unit does.

The torch + C half of the golden model: :func:`~psum.golden.emulation.layers.emulate` copies a
model and runs its forward inside an :class:`~psum.golden.emulation.context.Accumulator` (also
usable directly: ``with psum.accumulator(spec): model(x)``), a torch-function mode that computes
every MAC-bearing op with :mod:`.ops`; :mod:`.coverage` records what ran emulated and what stayed
float; :mod:`.kernels` accumulates (numpy, torch, C backends); :mod:`.stats` and :mod:`.record`
observe the partial sums. Imports torch; the numeric core :mod:`psum.golden` does not.
"""
