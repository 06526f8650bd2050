"""Block operand streams of a real layer for the block dot-product unit (:mod:`psum.hw.mx`).

A stream of block-scaled operands is one output element of a Linear layer: ``J`` blocks of ``k``
element pairs and their scale codes, and the accumulator's initial code (the bias). It iterates as
``(a_elems, b_elems, init)`` like the scalar streams of :mod:`psum.hw.verify.streams`, so a product
count (``a.size``) is the number of element products; the scales ride along as attributes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from psum.golden import MacSpec

__all__ = ["BlockStream", "linear_block_streams_from_digits"]


@dataclasses.dataclass(frozen=True)
class BlockStream:
    """One block dot product: ``J`` blocks of ``a`` and ``b`` (scale codes ``(J,)``, elements
    ``(J, k)``) into an accumulator loaded with ``init``."""

    a_scales: np.ndarray
    a_elems: np.ndarray
    b_scales: np.ndarray
    b_elems: np.ndarray
    init: int

    def __iter__(self):
        # (a, b, init), the shape of a scalar stream: the power proxy counts a.size products.
        return iter((self.a_elems, self.b_elems, self.init))


def linear_block_streams_from_digits(spec, n_outputs: int, seed: int = 0) -> list:
    """Block streams of a Linear layer over scikit-learn's 8x8 digit images (no download).

    Each output element is one image's 64 pixels (``/ 16``, padded with zeros to a multiple of
    the block size, as the emulation pads a reduction) times a fixed-seed Gaussian weight row,
    both quantised with :func:`psum.golden.blocks.quantize_blocks` (OCP MX / NVFP4 rules), and a
    Gaussian bias loaded into the accumulator.

    Parameters
    ----------
    spec : MacSpec or str
        Block-scaled operands.
    n_outputs : int
        Number of output elements (streams of ``J`` blocks).
    seed : int
        Seed of the weights, biases and the choice of images.

    Returns
    -------
    list of BlockStream
    """
    from sklearn.datasets import load_digits

    from psum.golden.blocks import quantize_blocks

    spec = MacSpec.parse(spec)
    rng = np.random.default_rng(seed)
    images = load_digits().images.reshape(-1, 64) / 16.0
    x = images[rng.integers(0, len(images), n_outputs)]
    w = rng.normal(0.0, 0.3, size=(n_outputs, 64))
    sa, ea = quantize_blocks(x, spec.a, pad=True)
    sb, eb = quantize_blocks(w, spec.b, pad=True)
    bias = spec.acc.encode(rng.normal(0.0, 0.5, n_outputs))
    return [BlockStream(sa[i], ea[i], sb[i], eb[i], int(bias[i])) for i in range(n_outputs)]
