"""A dataset source of operand streams: 3x3 convolutions over real handwritten digits.

The default stimulus of :func:`psum.flows.power.estimate_power` (the power proxy) and of ``psum sim``;
it needs scikit-learn (imported when called), which the rest of :mod:`psum.hw.verify` does not.
"""

from __future__ import annotations

import numpy as np

from psum._util import check_int
from psum.golden import IntFormat, MacSpec

__all__ = ["conv_streams_from_digits"]


#: Output elements of the default stream: 64 outputs of a 3x3 conv, 9 MACs each (576 MAC cycles).
DEFAULT_OUTPUTS = 64


def conv_streams_from_digits(spec, n_outputs: int = DEFAULT_OUTPUTS, seed: int = 0) -> list:
    """Operand streams of a 3x3 convolution over real handwritten-digit images.

    The images are scikit-learn's bundled 8x8 digits (no download). Pixels (0..16) are scaled into
    ``spec.a``'s range (integers: ``[0, max_int]``; floats: ``[0, 1]``), weights are fixed-seed
    Gaussian values scaled into ``spec.b``, and each output element's bias is loaded into the
    accumulator first, as a conv layer's MAC array would do.

    Parameters
    ----------
    spec : MacSpec or str
    n_outputs : int
        Number of output elements (streams of 9 products each).
    seed : int
        Seed of the weights, biases and the choice of images and positions.

    Returns
    -------
    list of (a_codes, b_codes, init_code)
        Block-scaled operands (:mod:`psum.hw.mx`) take whole blocks: their streams are a Linear
        layer's over the same images
        (:func:`psum.hw.verify.block_streams.linear_block_streams_from_digits`).

    Raises
    ------
    TypeError, ValueError
        ``n_outputs`` is not an integer >= 0.
    """
    from sklearn.datasets import load_digits

    spec = MacSpec.parse(spec)
    n_outputs = check_int("n_outputs", n_outputs, 0)
    if spec.blocked:
        from .block_streams import linear_block_streams_from_digits

        return linear_block_streams_from_digits(spec, n_outputs, seed)
    rng = np.random.default_rng(seed)
    images = load_digits().images  # (1797, 8, 8), values 0..16
    n_filters = 4
    weights = rng.standard_normal((n_filters, 3, 3))
    bias = rng.standard_normal(n_filters) * 0.25

    def scale(fmt, x):
        # Why the scales: integer units get codes that span the format, float units keep values
        # around 1 (activations in [0, 1], weights ~N(0, 1)), as a quantised network would.
        if isinstance(fmt, IntFormat):
            return fmt.encode(np.clip(np.round(x * fmt.max_int), fmt.min_int, fmt.max_int), saturate=True)
        return fmt.encode(x, "rne", saturate=True)

    out = []
    img = rng.integers(0, len(images), size=n_outputs)
    pos = rng.integers(0, 6, size=(n_outputs, 2))
    flt = rng.integers(0, n_filters, size=n_outputs)
    for i in range(n_outputs):
        y, x = pos[i]
        patch = images[img[i], y:y + 3, x:x + 3].ravel() / 16.0
        w = weights[flt[i]].ravel()
        a = scale(spec.a, patch)
        b = scale(spec.b, w / 3.0 if isinstance(spec.b, IntFormat) else w)
        if isinstance(spec.acc, IntFormat):
            hi = min(spec.acc.max_int, spec.a.max_int * max(abs(spec.b.min_int), spec.b.max_int))
            init = spec.acc.encode([bias[flt[i]] * hi / 4], saturate=True)[0]
        else:
            init = spec.acc.encode([bias[flt[i]]], "rne", saturate=True)[0]
        out.append((a, b, int(init)))
    return out
