"""What the studies share: their folders, the section files, plots and tables written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from psum._util import atomic_path, atomic_write

__all__ = ["STUDIES", "BOUNDS", "TRUNCS", "SOURCES", "study_dir", "section_path", "write_json", "write_csv",
           "save_figure", "md_table", "write_section"]

# study name (CLI subcommand) -> file stem of its section
STUDIES = {"deepseek": "deepseek", "accumulation-theory": "accumulation", "a2q": "a2q"}

# Inclusive ranges of the DeepSeek study's integer axes, read by both the API's checks
# (:func:`psum.studies.deepseek.run_deepseek`) and ``psum study``'s parse-time validators, so the
# two cannot disagree. Why these: K up to 64 Ki products per dot; W up to 24 bits (fp32's
# significand, the register it promotes into); lanes up to 1024 products per adder tree; size a
# 4096 x 4096 output (minutes per setting beyond that).
BOUNDS = {"K": (1, 1 << 16), "W": (1, 24), "lanes": (1, 1024), "size": (1, 4096)}
# The truncations of the aligned terms (toward zero, or two's complement floor) and the operand sources.
TRUNCS = ("zero", "floor")
SOURCES = ("random", "layer")


def study_dir(name: str, out_dir=None) -> Path:
    """The folder of study ``name``: ``out_dir``, else ``study-<name>`` under
    :func:`psum.paths.results_dir` (the working directory, or ``$PSUM_RESULTS_DIR``)."""
    from psum.paths import results_dir

    if name not in STUDIES:
        raise ValueError(f"study must be one of {', '.join(STUDIES)}, not {name!r}")
    return Path(out_dir) if out_dir is not None else results_dir(f"study-{name}")


def section_path(name: str, base) -> Path | None:
    """The Markdown section of study ``name`` in the folder ``base/study-<name>/``, or ``None``
    when it has not been written (what ``psum report`` links)."""
    path = Path(base) / f"study-{name}" / f"{STUDIES[name]}.md"
    return path if path.is_file() else None


def write_json(path, data) -> Path:
    return atomic_write(path, json.dumps(data, indent=1, default=str) + "\n")


def write_csv(path, rows: list[dict]) -> Path:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()})
    return atomic_write(path, buf.getvalue())


def save_figure(fig, out: Path, stem: str) -> list[Path]:
    """``<stem>.png`` and ``<stem>.svg`` in ``out`` (atomically), then close the figure."""
    import matplotlib.pyplot as plt

    paths = []
    for ext in ("png", "svg"):
        path = Path(out) / f"{stem}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def md_table(rows: list[dict], cols: list[str], heads: list[str] | None = None, floats: str = "{:.3g}") -> str:
    """A Markdown table of ``rows`` (``None`` prints as an empty cell)."""
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return floats.format(v)
        return str(v)

    heads = heads or cols
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_section(out: Path, stem: str, text: str) -> Path:
    """The study's Markdown section ``<stem>.md`` in ``out`` (atomically)."""
    return atomic_write(Path(out) / f"{stem}.md", text)


def figure():
    """A new matplotlib figure on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.2))
