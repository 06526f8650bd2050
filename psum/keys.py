"""One key name per quantity across psum's JSON and CSV outputs, and the old names still read.

psum's outputs grew from several modules, and two quantities had two names: top-1 accuracy
(``top1`` in ``psum eval``, ``accuracy`` in sweeps, reports and checkpoints) and energy per MAC
(``energy_per_mac_fj`` in ``psum synth``, ``energy_fj`` in a report's ``hardware.csv``). The
standard names are the ones on the left of :data:`UNIFIED_KEYS`' values; :func:`unify_keys` maps
a row written under an old name (a results file from before the change) to them, so readers of
old files keep working.
"""

from __future__ import annotations

__all__ = ["UNIFIED_KEYS", "unify_keys"]

# old name -> standard name
UNIFIED_KEYS = {
    "top1": "accuracy",  # top-1 accuracy, percent
    "energy_fj": "energy_per_mac_fj",  # energy per multiply-accumulate, femtojoules
}


def unify_keys(row: dict) -> dict:
    """A copy of ``row`` with every old key name of :data:`UNIFIED_KEYS` replaced by its standard
    name (the standard one wins when both are present). Nested dicts and lists are left as they are.

    Parameters
    ----------
    row : dict
        One JSON object or CSV row, as read.

    Returns
    -------
    dict
        The same items under the standard names, in the original order.
    """
    out = {}
    for k, v in row.items():
        std = UNIFIED_KEYS.get(k, k)
        if std != k and std in row:
            continue
        out[std] = v
    return out
