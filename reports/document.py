"""A tiny document model written out twice: ``report.md`` and a self-contained ``index.html``.

Blocks are headings, paragraphs, links (to files beside the report, relative), tables (lists of
dicts) and figures (PNG files next to the report). The HTML embeds the PNGs as base64 so the page reads offline as one file.

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

__all__ = ["Document", "format_cell", "md_text", "md_cell", "safe_href"]


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


class Document:
    """Ordered report blocks; :meth:`write` renders Markdown and HTML atomically."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []

    def heading(self, text: str, level: int = 2):
        self.blocks.append(("h", level, text))

    def para(self, text: str):
        self.blocks.append(("p", text))

    def link(self, text: str, href: str, *, before: str = "", after: str = ""):
        """A paragraph ``before`` + a link to ``href`` (relative to the report) + ``after``."""
        self.blocks.append(("a", before, text, href, after))

    def table(self, rows: list[dict], columns: list[str] | None = None, headers: list[str] | None = None):
        if rows:
            columns = columns or list(rows[0])
            self.blocks.append(("t", rows, columns, headers or columns))

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
            elif b[0] == "a":
                _, before, text, href, after = b
                out += [f"{_md_para(before)}[{_md_label(text)}]({safe_href(href)}){_md_para(after)}", ""]
            elif b[0] == "t":
                _, rows, cols, heads = b
                out.append("| " + " | ".join(md_cell(h) for h in heads) + " |")
                out.append("|" + "|".join("---" for _ in cols) + "|")
                out += ["| " + " | ".join(md_cell(format_cell(r.get(c))) for c in cols) + " |" for r in rows]
                out.append("")
            elif b[0] == "f":
                out += [f"![{_md_label(b[2])}]({safe_href(b[1])})", "", f"*{md_text(b[2])}*", ""]
        return "\n".join(out)

    def html(self, base: Path) -> str:
        esc = html.escape
        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1]}>{esc(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                body.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "a":
                _, before, text, href, after = b
                body.append(f'<p>{_inline(before)}<a href="{safe_href(href)}">{esc(text)}</a>{_inline(after)}</p>')
            elif b[0] == "t":
                _, rows, cols, heads = b
                th = "".join(f"<th>{esc(h)}</th>" for h in heads)
                trs = "".join("<tr>" + "".join(f"<td>{esc(format_cell(r.get(c)))}</td>" for c in cols) + "</tr>"
                              for r in rows)
                body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
            elif b[0] == "f":
                data = base64.b64encode((base / b[1]).read_bytes()).decode()
                body.append(f'<figure><img alt="{esc(b[2])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{esc(b[2])}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;"
                 "color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
                 "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
                 "img{max-width:100%}figcaption{font-size:12px;color:#555}code{background:#f4f4f4}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{esc(self.title)}</h1>{''.join(body)}</body></html>\n")

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
