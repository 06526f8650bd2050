"""Reproduce the MX study of docs/mx.md (issue 15): minimum accumulator per operand format and model.

    .venv/bin/python results/study-mx/run_study.py MODEL LIMIT TOL [KIND ...]

MODEL is resnet18 or vit (digits, the shipped checkpoints), LIMIT the first test images, TOL the
allowed top-1 drop in points (one image), KIND float and/or fixed (default both). It calls
:func:`psum.reports.mx.mx_study`: per operand format, e8m<M> (M = 1..5) and saturating
q32.<F> (F = 0..8) searches, the drop measured from the same operands with an fp32 accumulator.
Each finished search is appended to ``results/study-mx/<model>.jsonl``; evaluated rows are cached
in ``results/study-mx/<model>-rows.jsonl``, so a rerun reuses them.
"""

import sys
from pathlib import Path

from psum.reports.mx import mx_study

ORDER = ("mxfp4", "nvfp4", "mxfp8_e4m3", "mxint8", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e5m2")

model, limit, tol = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
mx_study(model, "digits", operands=ORDER, kinds=sys.argv[4:] or ("float", "fixed"), limit=limit, tol=tol,
         out_dir=Path(__file__).parent)
