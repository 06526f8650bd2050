"""A tiny document model written out twice: ``report.md`` and a self-contained ``index.html``.

Blocks are headings, paragraphs, links (to files beside the report, relative), tables (lists of
dicts) and figures (PNG files next to the report). The HTML embeds the PNGs as base64 so the page reads offline as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from psum._util import atomic_write

__all__ = ["Document", "format_cell"]


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
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "a":
                _, before, text, href, after = b
                out += [f"{before}[{text}]({href}){after}", ""]
            elif b[0] == "t":
                _, rows, cols, heads = b
                out.append("| " + " | ".join(heads) + " |")
                out.append("|" + "|".join("---" for _ in cols) + "|")
                out += ["| " + " | ".join(format_cell(r.get(c)) for c in cols) + " |" for r in rows]
                out.append("")
            elif b[0] == "f":
                out += [f"![{b[2]}]({b[1]})", "", f"*{b[2]}*", ""]
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
                body.append(f'<p>{_inline(before)}<a href="{esc(href)}">{esc(text)}</a>{_inline(after)}</p>')
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


def _inline(text: str) -> str:
    """Escape, then render `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
