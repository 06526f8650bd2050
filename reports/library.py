"""The report's cell library: psum45 (the default) or a team's own Liberty file (``--liberty``).

Every silicon figure of a report (the per-MAC hardware table, the iso-throughput comparison,
the datapath breakdown, the glitch figures) comes from one library, read once before any work
(:func:`report_library`) and named in the document and in ``data.json["library"]``
(:func:`library_info`): its name and the sha256 prefix of the file, which is also part of every
synthesis cache key (:func:`psum.flows.synth.synthesize`), so two reports on two libraries never
share a figure.

The file is read by :func:`psum.flows.liberty.read_liberty` (the maintained ``liberty-parser``
package); what that refuses (a missing file, a file that is not Liberty, a delay model other
than NLDM, no plain D flip-flop) is refused here with the same one-line message. On top, a
report refuses a library the flow cannot map logic onto (:func:`check_usable`, which
``read_liberty`` runs too), so the error comes at once instead of from ABC after the network
sweeps have run.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from psum.flows.liberty import check_usable  # the flow's own check, kept here for the report's callers

__all__ = ["report_library", "check_usable", "library_info", "library_sentence"]


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int):
    # Why cached on (path, mtime, size): the CLI checks the file before any work and the report
    # reads it again when it starts; a real Liberty file takes seconds to parse.
    from psum.flows.liberty import read_liberty

    lib = read_liberty(path)
    check_usable(lib)
    return lib


def report_library(liberty):
    """The report's library: ``None`` for psum45, else the checked :class:`psum.flows.liberty.Library`.

    Parameters
    ----------
    liberty : str, path-like, Library or None
        A Liberty file (or one already read).

    Raises
    ------
    FileNotFoundError
        No such file.
    psum.errors.PsumError
        Not a Liberty file, not NLDM, no plain D flip-flop (:func:`psum.flows.liberty.read_liberty`),
        or no usable logic cells (:func:`check_usable`).
    """
    if liberty is None:
        return None
    if hasattr(liberty, "cells"):
        check_usable(liberty)
        return liberty
    from psum.flows.liberty import check_path

    path = check_path(liberty)
    st = os.stat(path)
    return _read(str(path), st.st_mtime_ns, st.st_size)


def library_info(lib) -> dict:
    """``data.json["library"]``: which cells every silicon figure of the report comes from.

    Returns
    -------
    dict
        ``kind`` (``"psum45"`` or ``"liberty"``), ``name`` (the ``library (name)``), ``file`` (the
        file's name, no folder: results name no machine paths), ``digest`` (sha256 prefix of the
        file; psum45: of its figures), ``ge_area`` (area of one gate equivalent, the smallest
        two-input NAND, in the library's area unit), ``nand2`` (False when the file has no NAND2:
        :func:`psum.flows.liberty.read_liberty` then divides by psum45's NAND2 area, 0.798 µm²,
        so GE compare with psum45 only if the file's area unit is µm²), ``delay`` and ``power``
        (the models used).
    """
    if lib is None:
        from psum.flows.cells import NAND2_AREA, library_hash

        return dict(kind="psum45", name="psum45", file="psum45.lib", digest=library_hash(), ge_area=NAND2_AREA,
                    delay="linear (d0 + k x load)", power="toggle count x (load + internal energy), no leakage")
    from psum.flows.liberty import MODEL_VERSION

    return dict(kind="liberty", name=lib.name, file=Path(lib.path).name, digest=lib.digest, ge_area=lib.nand2_area,
                nand2=_has_nand2(lib), delay=f"NLDM rise/fall with slew propagation (model {MODEL_VERSION})",
                power="toggle count x internal_power tables + load, plus cell_leakage_power")


def _has_nand2(lib) -> bool:
    """True when ``lib`` has a two-input NAND (the cell :func:`psum.flows.liberty.read_liberty`
    takes as one GE; the same test on the cell's function)."""
    return any(not c.is_ff and len(c.inputs) == 2 and re.fullmatch(r"!\(\s*(\w+)\s*[&*]\s*(\w+)\s*\)", c.function)
               for c in lib.cells.values())


def library_sentence(info: dict | None) -> str:
    """How the report's silicon figures were made, for its introduction (``info``: :func:`library_info`;
    ``None``, a report written before the field: psum45)."""
    if not info or info.get("kind") == "psum45":
        return ("synthesised with Yosys+ABC onto psum45 (NAND2-equivalent area, linear-delay critical path, "
                "toggle-count energy per MAC)")
    ge = (f"in GE of its smallest NAND2 ({info['ge_area']:g} units)" if info.get("nand2", True) else
          f"in GE of psum45's NAND2 area ({info['ge_area']:g}; the file has no two-input NAND, so GE compare with "
          "psum45 only if its area unit is um2)")
    return (f"synthesised with Yosys+ABC onto the Liberty library {info['name']} (`{info['file']}`, sha256 "
            f"{info['digest']}): area in the file's unit and {ge}, NLDM rise/fall delays with slew propagation, "
            f"energy per MAC from its internal_power tables plus leakage")
