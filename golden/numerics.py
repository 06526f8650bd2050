"""The numerics version: one integer that names the arithmetic psum computes.

Rule: bump :data:`NUMERICS_VERSION` in the same commit as any change that can change a single
output bit of the golden model or of the emulation for some input -- a rounding or special-value
rule (``rounding.py``, ``mac.py``'s special cases, ``FloatFormat.overflow_codes``), how a format
decodes, operand quantisation and scaling in the emulation, or how stochastic rounding draws its
random bits. Pure speed-ups, refactorings and new formats or options that leave every existing
result bit-identical do not bump it (the tests against the Fraction reference and the committed
results say whether they do).

Every result row a sweep writes carries ``numerics`` and it is part of the row's key, so a
resumed results file never mixes rows computed by two different arithmetics: rows of another
version are recomputed (and the sweep says so once). ``psum_version`` (the package's release) is
kept in the row for provenance only.

History
-------
1
    Everything before versioning (rows without a ``numerics`` field).
2
    Integers of 63 and 64 bits exact (decode, encode, the torch path); a NaN result in a format
    without NaN is +0 (was an error); stochastic rounding indexes its random bits by the global
    sample number instead of the position in the batch.
"""

__all__ = ["NUMERICS_VERSION"]

NUMERICS_VERSION = 2
