"""A report page: a title, key facts and sections, rendered as Markdown or as one HTML page.

Reports are built as a `Page` of plain values and rendered here, so that escaping lives
in one place: every value is escaped for the target format. The HTML page is
self-contained (inline CSS, no script, no external asset, a Content-Security-Policy that
forbids both), so an auditor can open it offline and archive it as one file.

>>> page = Page("Evidence", facts=(("model", "fraud"),), sections=(
...     Section("Rows", (Table(("index", "comment"), (("3", "<b>ok</b> | fine"),)),)),))
>>> print(page.to_markdown())
# Evidence
<BLANKLINE>
- **model:** fraud
<BLANKLINE>
## Rows
<BLANKLINE>
| index | comment |
| --- | --- |
| 3 | \\<b\\>ok\\</b\\> \\| fine |
<BLANKLINE>
>>> "&lt;b&gt;ok&lt;/b&gt;" in page.to_html() and "<b>ok" not in page.to_html()
True
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = [
    "Alert",
    "Block",
    "Inline",
    "Mark",
    "Page",
    "Paragraph",
    "Preformatted",
    "Section",
    "Table",
]

# CommonMark §2.4: any ASCII punctuation may be backslash-escaped; these are the ones that
# start inline markup (emphasis, code, links, raw HTML, entities, strikethrough, table cells).
# Block markup (#, >, -, 1.) only counts at the start of a line, where values never are.
_WHITESPACE = re.compile(r"\s+")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&~])")
# CommonMark §6.2: "_" inside a word never opens or closes emphasis (model_version stays
# readable); only one at a word's edge needs escaping.
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


@dataclass(frozen=True, slots=True)
class Mark:
    """Inline text with a meaning: ``code`` (digests, ids), ``strong``, ``good`` or ``bad``."""

    text: str
    style: Literal["code", "strong", "good", "bad"] = "strong"


Inline: TypeAlias = str | Mark


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A line of inline pieces, joined without separators."""

    parts: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """A loud callout (an override, a failed rule): a blockquote, or a red box in HTML."""

    parts: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of cells under headers; every row has one cell per header."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]


@dataclass(frozen=True, slots=True)
class Preformatted:
    """Verbatim text (a policy document), shown in a code block."""

    text: str


Block: TypeAlias = Paragraph | Alert | Table | Preformatted


@dataclass(frozen=True, slots=True)
class Section:
    """A titled run of blocks."""

    title: str
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    """A whole report."""

    title: str
    facts: tuple[tuple[str, Inline], ...] = ()
    sections: tuple[Section, ...] = ()
    notes: tuple[Paragraph, ...] = ()

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown; every value is backslash-escaped (CommonMark §2.4)."""
        out = [f"# {_md_text(self.title)}", ""]
        out += [f"- **{_md_text(key)}:** {_md_inline(value)}" for key, value in self.facts]
        for note in self.notes:
            out += ["", _md_parts(note.parts)]
        for section in self.sections:
            out += ["", f"## {_md_text(section.title)}"]
            for block in section.blocks:
                out += ["", *_md_block(block)]
        return "\n".join(out) + "\n"

    def to_html(self) -> str:
        """One self-contained HTML5 page; every value is HTML-escaped."""
        body = [f"<h1>{_esc(self.title)}</h1>", '<dl class="facts">']
        body += [f"<dt>{_esc(k)}</dt><dd>{_html_inline(v)}</dd>" for k, v in self.facts]
        body.append("</dl>")
        body += [f'<p class="note">{_html_parts(note.parts)}</p>' for note in self.notes]
        for section in self.sections:
            body.append(f"<section><h2>{_esc(section.title)}</h2>")
            body += [_html_block(block) for block in section.blocks]
            body.append("</section>")
        return _HTML_TEMPLATE.format(title=_esc(self.title), body="\n".join(body))


def show(value: Any) -> str:
    """A JSON value as one line of text: ``—`` for null, compact JSON for containers."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def show_ref(value: Any) -> str:
    """An actor or subject (``{"type", "id"}``) as ``type id``; anything else as `show`."""
    if isinstance(value, Mapping):
        return " ".join(str(value[k]) for k in ("type", "id") if value.get(k) is not None)
    return show(value)


# --- Markdown ----------------------------------------------------------------------------------


def _md_text(text: str) -> str:
    flat = _WHITESPACE.sub(" ", str(text))  # a table cell or list item is one line
    return _MD_UNDERSCORE.sub(r"\\_", _MD_SPECIAL.sub(r"\\\1", flat))


def _md_inline(value: Inline) -> str:
    if isinstance(value, str):
        return _md_text(value)
    if value.style == "code":
        return _md_code(value.text)
    if value.style == "good":
        return _md_text(value.text)
    return f"**{_md_text(value.text)}**"


def _md_code(text: str) -> str:
    flat = _WHITESPACE.sub(" ", text).replace("|", "\\|")  # GFM: a pipe splits cells even in code
    ticks = "`" * (max((len(run) for run in re.findall("`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def _md_parts(parts: Sequence[Inline]) -> str:
    return "".join(_md_inline(part) for part in parts)


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [_md_parts(block.parts)]
    if isinstance(block, Alert):
        return [f"> **⚠** {_md_parts(block.parts)}"]
    if isinstance(block, Preformatted):
        fence = "`" * max(3, max((len(r) for r in re.findall("`+", block.text)), default=0) + 1)
        return [fence, block.text.rstrip("\n"), fence]
    lines = ["| " + " | ".join(_md_text(h) for h in block.headers) + " |"]
    lines.append("|" + " --- |" * len(block.headers))
    lines += ["| " + " | ".join(_md_inline(cell) for cell in row) + " |" for row in block.rows]
    return lines


# --- HTML --------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _html_inline(value: Inline) -> str:
    if isinstance(value, str):
        return _esc(value)
    if value.style == "code":
        return f"<code>{_esc(value.text)}</code>"
    if value.style == "strong":
        return f"<strong>{_esc(value.text)}</strong>"
    return f'<span class="{value.style}">{_esc(value.text)}</span>'


def _html_parts(parts: Sequence[Inline]) -> str:
    return "".join(_html_inline(part) for part in parts)


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_html_parts(block.parts)}</p>"
    if isinstance(block, Alert):
        return f'<div class="alert" role="alert">⚠ {_html_parts(block.parts)}</div>'
    if isinstance(block, Preformatted):
        return f"<pre>{_esc(block.text)}</pre>"
    head = "".join(f"<th>{_esc(h)}</th>" for h in block.headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_html_inline(cell)}</td>" for cell in row) + "</tr>"
        for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


_HTML_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 90em;
       padding: 0 1em; color: #1b1f24; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.25em; border-bottom: 1px solid #d0d7de; }}
dl.facts {{ display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; width: 100%; }}
th, td {{ border: 1px solid #d0d7de; padding: .3em .5em; text-align: left;
          vertical-align: top; }}
th {{ background: #f6f8fa; }}
code, pre {{ font: 12px/1.4 ui-monospace, monospace; overflow-wrap: anywhere; }}
pre {{ background: #f6f8fa; padding: .8em; white-space: pre-wrap; }}
.good {{ color: #1a7f37; font-weight: 600; }} .bad {{ color: #cf222e; font-weight: 700; }}
.alert {{ border: 2px solid #cf222e; background: #ffebe9; padding: .6em .8em;
          margin: .6em 0; font-weight: 600; }}
.note {{ color: #57606a; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""
