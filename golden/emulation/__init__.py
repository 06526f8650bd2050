"""psum.golden.emulation: whole PyTorch networks with every partial sum rounded as the MAC unit does.

The torch + C half of the golden model: :func:`~psum.golden.emulation.layers.emulate` swaps a
network's MAC layers for emulated ones, :mod:`.kernels` accumulates (numpy, torch, C backends),
:mod:`.stats` and :mod:`.record` observe the partial sums. Imports torch; the numeric core
:mod:`psum.golden` does not.
"""
