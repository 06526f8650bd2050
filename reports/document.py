"""A tiny document model written out twice: ``report.md`` and a self-contained ``index.html``.

Blocks are headings (each with an anchor), a table of contents linking every heading that
exists, paragraphs, notes (a highlighted banner such as "reduced run"), links (to files beside the
report, relative), tables (lists of dicts) and figures (PNG files next to the report).

Tables follow the usual typesetting rule for numbers (Chicago Manual of Style, 3.77; Butterick,
*Practical Typography*, "tables"): one number format per column, so digits line up, numbers
right-aligned and text left-aligned; :func:`column_format` picks the format from the column's
values. The HTML embeds the PNGs as base64 so the page reads offline as one file.

Every string is treated as untrusted text (model, layer, spec and dataset names come from files and
users' models): in HTML everything is escaped; in Markdown a table cell cannot break its table (a
``|`` is escaped, a newline becomes a space), raw HTML cannot reach a renderer (``<`` and ``&`` are
written as entities), and link targets are percent-encoded relative paths (no ``javascript:``
scheme, no ``)`` closing the link early). Paragraphs keep their `` `code` `` spans.
"""

from __future__ import annotations

import base64
import html
import urllib.parse
from pathlib import Path

from psum._util import atomic_write

__all__ = ["Document", "format_cell", "column_format", "slug", "md_text", "md_cell", "safe_href"]


def md_text(text) -> str:
    """``text`` for Markdown prose: raw HTML made inert (``&`` and ``<`` as entities), one line.

    Why entities rather than backslashes: CommonMark (and GFM) passes raw HTML through, and a
    backslash does not stop ``<script>`` in every renderer; ``&lt;`` always displays as ``<``.
    """
    text = str(text).replace("&", "&amp;").replace("<", "&lt;")
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def md_cell(text) -> str:
    """``text`` for one Markdown table cell: :func:`md_text`, and ``|``/``\\`` escaped (GFM tables).

    A ``|`` would start a new cell and a newline would end the row; GFM reads ``\\|`` as a literal
    bar inside a cell (GFM spec, "Tables (extension)", example 200).
    """
    return md_text(text).replace("\\", "\\\\").replace("|", "\\|")


def safe_href(href) -> str:
    """A link target as a percent-encoded relative path.

    Only ``/``, ``.``, ``-``, ``_``, ``~`` and ``#`` stay literal, so no scheme (``javascript:``), no
    space or ``)`` that would end a Markdown link, and no quote that would end an HTML attribute.
    """
    return urllib.parse.quote(str(href), safe="/._-~#")


def format_cell(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    if v is None:
        return "-"
    return str(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def column_format(values) -> tuple[str, bool]:
    """One format for a table column and whether it is numeric (right-aligned).

    Integers: thousands separators (``1,006``). Floats: as many decimals as the column's largest
    magnitude allows at about four significant digits (``>= 1000``: 0, ``>= 100``: 1, ``>= 1``: 2,
    else 3), the same for every cell, so ``920.7`` and ``1,006`` become ``921`` and ``1,006``.
    Text columns (any non-number that is not ``None``) are left as text.

    Returns
    -------
    (str, bool)
        A :meth:`str.format` spec (``"{:,.2f}"``; ``"{}"`` for text) and ``True`` for numbers.
    """
    nums = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    if not nums or not all(_is_number(v) for v in nums):
        return "{}", False
    if all(isinstance(v, int) for v in nums):
        return "{:,d}", True
    top = max(abs(float(v)) for v in nums)
    decimals = 0 if top >= 1000 else 1 if top >= 100 else 2 if top >= 1 else 3
    return "{:,.%df}" % decimals, True


def _cell(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if fmt == "{}" or not _is_number(v):
        return format_cell(v)
    return fmt.format(int(v) if fmt == "{:,d}" else float(v))


def slug(text: str) -> str:
    """The anchor of a heading as GitHub writes it for Markdown (lower case, punctuation dropped,
    spaces as ``-``), so the same ``#anchor`` works in ``report.md`` and ``index.html``."""
    import re

    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", str(text).strip().lower()))


class Document:
    """Ordered report blocks; :meth:`write` renders Markdown and HTML atomically."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []

    def heading(self, text: str, level: int = 2):
        self.blocks.append(("h", level, text))

    def para(self, text: str):
        self.blocks.append(("p", text))

    def lead(self, label: str, text: str):
        """A paragraph opened by a bold ``label`` (the report's one-sentence conclusion)."""
        self.blocks.append(("l", label, text))

    def note(self, text: str):
        """A highlighted paragraph (a banner such as "reduced run")."""
        self.blocks.append(("n", text))

    def toc(self, level: int = 2):
        """Links to every heading of ``level`` in the finished document (placed here)."""
        self.blocks.append(("toc", level))

    def link(self, text: str, href: str, *, before: str = "", after: str = ""):
        """A paragraph ``before`` + a link to ``href`` (relative to the report) + ``after``."""
        self.blocks.append(("a", before, text, href, after))

    def table(self, rows: list[dict], columns: list[str] | None = None, headers: list[str] | None = None,
              formats: dict | None = None):
        """A table of ``rows``; ``formats`` maps a column to a :meth:`str.format` spec (else
        :func:`column_format` picks one per column)."""
        if rows:
            columns = columns or list(rows[0])
            fmts = []
            for c in columns:
                auto, numeric = column_format([r.get(c) for r in rows])
                fmts.append(((formats or {}).get(c, auto), numeric))
            self.blocks.append(("t", rows, columns, headers or columns, fmts))

    def figure(self, png_name: str, caption: str):
        self.blocks.append(("f", png_name, caption))

    # -- rendering -------------------------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {md_text(self.title)}", ""]
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * b[1] + " " + md_text(b[2]), ""]
            elif b[0] == "p":
                out += [_md_para(b[1]), ""]
            elif b[0] == "n":
                out += ["> **" + _md_para(b[1]) + "**", ""]
            elif b[0] == "l":
                out += [f"**{md_text(b[1])}** {_md_para(b[2])}", ""]
            elif b[0] == "toc":
                out += [" · ".join(f"[{_md_label(h)}](#{safe_href(slug(h))})" for h in self._headings(b[1])), ""]
            elif b[0] == "a":
                _, before, text, href, after = b
                out += [f"{_md_para(before)}[{_md_label(text)}]({safe_href(href)}){_md_para(after)}", ""]
            elif b[0] == "t":
                _, rows, cols, heads, fmts = b
                out.append("| " + " | ".join(md_cell(h) for h in heads) + " |")
                out.append("|" + "|".join("---:" if num else ":---" for _, num in fmts) + "|")
                out += ["| " + " | ".join(md_cell(_cell(r.get(c), f)) for c, (f, _) in zip(cols, fmts)) + " |"
                        for r in rows]
                out.append("")
            elif b[0] == "f":
                out += [f"![{_md_label(b[2])}]({safe_href(b[1])})", "", f"*{md_text(b[2])}*", ""]
        return "\n".join(out)

    def html(self, base: Path) -> str:
        esc = html.escape
        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f'<h{b[1]} id="{esc(slug(b[2]))}">{esc(b[2])}</h{b[1]}>')
            elif b[0] == "p":
                body.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "n":
                body.append(f'<p class="note">{_inline(b[1])}</p>')
            elif b[0] == "l":
                body.append(f'<p class="lead"><strong>{esc(b[1])}</strong> {_inline(b[2])}</p>')
            elif b[0] == "toc":
                links = " · ".join(f'<a href="#{safe_href(slug(h))}">{esc(h)}</a>' for h in self._headings(b[1]))
                body.append(f'<nav class="toc">{links}</nav>')
            elif b[0] == "a":
                _, before, text, href, after = b
                body.append(f'<p>{_inline(before)}<a href="{safe_href(href)}">{esc(text)}</a>{_inline(after)}</p>')
            elif b[0] == "t":
                _, rows, cols, heads, fmts = b
                cls = [' class="num"' if num else "" for _, num in fmts]
                th = "".join(f"<th{k}>{esc(h)}</th>" for h, k in zip(heads, cls))
                trs = "".join("<tr>" + "".join(f"<td{k}>{esc(_cell(r.get(c), f))}</td>"
                                               for c, (f, _), k in zip(cols, fmts, cls)) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
            elif b[0] == "f":
                data = base64.b64encode((base / b[1]).read_bytes()).decode()
                body.append(f'<figure><img alt="{esc(b[2])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{esc(b[2])}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;"
                 "color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
                 "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
                 ".num{text-align:right;font-variant-numeric:tabular-nums}"
                 ".note{background:#fff4d6;border-left:4px solid #e69f00;padding:.5em .8em}"
                 ".toc{font-size:14px;margin:1em 0;line-height:1.8}.lead{font-size:17px}"
                 "img{max-width:100%}figcaption{font-size:12px;color:#555}code{background:#f4f4f4}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{esc(self.title)}</h1>{''.join(body)}</body></html>\n")

    def _headings(self, level: int) -> list[str]:
        return [b[2] for b in self.blocks if b[0] == "h" and b[1] == level]

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("report.md", self.markdown()), ("index.html", self.html(out_dir))):
            atomic_write(out_dir / name, text)


def _md_para(text: str) -> str:
    """Markdown prose on one line that keeps psum's `` `code` `` spans; the spans are shown literally.

    Inside a code span Markdown shows ``<`` as is, so only the prose between spans is escaped. Why
    one line: block structure is read before code spans, so a newline followed by ``<script`` would
    open a raw HTML block even "inside" a span (CommonMark 0.31, section 4.6, type 1).
    """
    parts = " ".join(str(text).splitlines()).split("`")
    # Why the parity test on len(parts): an unpaired last backtick opens no span in Markdown, so
    # the text after it is prose and must be escaped too.
    n_code = len(parts) - 1 if len(parts) % 2 else len(parts) - 2
    return "`".join(p if i % 2 and i <= n_code else md_text(p) for i, p in enumerate(parts))


def _md_label(text: str) -> str:
    """Link or image text: :func:`md_text` with brackets escaped (a ``]`` would end the label)."""
    return md_text(text).replace("[", "\\[").replace("]", "\\]")


def _inline(text: str) -> str:
    """Escape, then render `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
