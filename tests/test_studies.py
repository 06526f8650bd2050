"""Issue 16: psum against published results (DeepSeek-V3, Sakr et al. 2019, A2Q).

The two's-complement (``floor``) truncation of the multi-term order is checked three ways: the
emulation kernel against a Fraction reference (:func:`psum.golden.reference.mta_sum_ref`, one
group at a time), the cycle model and the Amaranth unit against the emulation. The studies'
formulas are checked against hand-worked values and brute force; their commands on tiny cases.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from psum.golden import MacSpec, Order
from psum.golden.emulation.kernels import accumulate_order
from psum.golden.mac import mac_step
from psum.golden.reference import decode_ref, mta_sum_ref, round_ref
from psum.golden.spec import add_spec


# ---------------------------------------------------------------------------------------------
# The floor variant of order=mta: text, reference, emulation, RTL
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, trunc", [("mta32w14p128", "zero"), ("mta32w14p128floor", "floor"),
                                         ("MTA4w8p8FLOOR", "floor")])
def test_mta_trunc_text_round_trip(text, trunc):
    o = Order.parse(text)
    assert o.trunc == trunc and Order.parse(str(o)) == o
    spec = MacSpec.parse(f"a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order={text}")
    assert MacSpec.parse(str(spec)) == spec
    assert ("floor_" in spec.name) == (trunc == "floor")  # module names tell the variants apart


def test_mta_trunc_defaults_and_refusals():
    assert Order("mta", n=4, w=8, p=8) == Order.parse("mta4w8p8")
    with pytest.raises(ValueError, match=r"^order mta4w8p8: trunc must be zero or floor, not 'up'$"):
        Order("mta", n=4, w=8, p=8, trunc="up")
    with pytest.raises(ValueError, match=r"^order seq takes no trunc \(mta only\)$"):
        Order("seq", trunc="floor")
    with pytest.raises(ValueError, match=r"^order must be seq, tree, chunk<L>, mta<N>w<W>p<P> or ilv<L>, "
                                         r"not 'mta4w8p8ceil'$"):
        Order.parse("mta4w8p8ceil")


def test_mta_sum_ref_by_hand():
    # terms 1, -3/16, -1/64 with W = 3: lsb = 2**(0 - 2) = 1/4
    t = [Fraction(1), Fraction(-3, 16), Fraction(-1, 64)]
    assert mta_sum_ref(t, 3, "zero") == (Fraction(1), Fraction(1, 4))          # both negatives drop
    assert mta_sum_ref(t, 3, "floor") == (Fraction(1, 2), Fraction(1, 4))       # each becomes -1/4
    assert mta_sum_ref([Fraction(0)], 3, "floor") == (0, 0)


def _enc(fmt, v):
    return int(fmt.encode(np.array([v]), "rne", saturate=True)[0])


def mta_floor_reference(spec, a, b, init):
    """Fractions and the reference rounder, one group at a time (fused products, no sr)."""
    fmt, o = spec.acc, spec.order
    K, R, acc2 = len(a), _enc(fmt, init), 0
    for g0 in range(0, K, o.n):
        g1 = min(K, g0 + o.n)
        rs, rv = decode_ref(fmt, R)
        terms = [-rv if rs else rv] + [Fraction(a[k]) * Fraction(b[k]) for k in range(g0, g1)]
        S, _ = mta_sum_ref(terms, o.w, o.trunc)
        if S == 0:
            R = fmt.sign_bit if spec.rounding.value == "rdn" else 0
        else:
            R = round_ref(fmt, S < 0, abs(S), spec.rounding, saturate=spec.saturate)
        if g1 % o.p == 0 or g1 == K:
            acc2 = int(mac_step(add_spec(spec, spec.acc2), acc2, R, 1))
            R = 0
    return float(spec.acc2.decode(np.asarray([acc2], dtype=np.uint64))[0])


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w8p8floor,round=rtz",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta3w6p6floor,acc2=fp16",
                                  "a=fp8_e5m2,b=fp8_e4m3,acc=fp32,order=mta8w5p16floor,round=rdn"])
def test_mta_floor_matches_fraction_reference(text):
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(5)
    M, N, K = 3, 4, 37
    A = spec.a.decode(spec.a.encode(rng.standard_normal((M, K)) * 2, saturate=True))
    B = spec.b.decode(spec.b.encode(rng.standard_normal((K, N)), saturate=True))
    init = spec.acc.decode(spec.acc.encode(rng.standard_normal((M, N)) * 4))
    got = accumulate_order(spec, *(torch.from_numpy(x) for x in (A, B, init))).numpy()
    for m in range(M):
        for n in range(N):
            assert got[m, n] == mta_floor_reference(spec, A[m], B[:, n], init[m, n]), (m, n)
    # and the variant matters here: toward zero gives other results
    zero = accumulate_order(spec.replace(order=str(spec.order).replace("floor", "")),
                            *(torch.from_numpy(x) for x in (A, B, init))).numpy()
    assert (zero != got).any()


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta4w8p8floor,acc2=fp16",
                                  "a=fp8_e5m2,b=fp8_e4m3,acc=e5m4,order=mta3w5p6floor,acc2=e5m7,round=rdn"])
def test_mta_floor_unit_equals_emulation_in_amaranth(text):
    """Load, K products, flush: the Amaranth unit and the cycle model give accumulate_order's acc2."""
    from psum.hw.verify import amaranth_trace
    from psum.hw.verify.model import expected_outputs
    from psum.hw.verify.stimulus import concat, stream_cycles

    spec = MacSpec.parse(text)
    rng = np.random.default_rng(7)
    streams, want = [], []
    for K in (0, 1, spec.order.p, spec.order.p + 1, 23):
        a = spec.a.encode(rng.standard_normal(K), "rne", saturate=True)
        b = spec.b.encode(rng.standard_normal(K) * 0.5, "rne", saturate=True)
        init = int(spec.acc.encode([rng.standard_normal()], "rne", saturate=True)[0])
        streams.append((a, b, init))
        A = torch.tensor(spec.a.decode(np.asarray(a, np.uint64))[None, :], dtype=torch.float64)
        B = torch.tensor(spec.b.decode(np.asarray(b, np.uint64))[:, None], dtype=torch.float64)
        I0 = torch.tensor(spec.acc.decode(np.array([[init]], np.uint64)), dtype=torch.float64)
        want.append(int(spec.acc2.encode(accumulate_order(spec, A, B, I0).numpy(), "rne")[0, 0]))
    stim = concat(spec, [stream_cycles(spec, streams)])
    stim["rst"] = np.zeros(len(stim["en"]), np.uint64)
    f = stim["flush"].astype(bool)
    ends = np.flatnonzero(f & ~np.concatenate([f[1:], [False]]))
    model = expected_outputs(spec, stim)
    assert [int(model["acc2"][t]) for t in ends] == want
    obs = amaranth_trace(spec, stim)
    assert [int(obs["acc2"][t]) for t in ends] == want
