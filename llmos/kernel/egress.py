"""The egress filter: what a final answer may make the user's client fetch.

An answer is shown by a client that renders Markdown, often with HTML and autolinks. Anything
in it that names a URL can carry data out: an image is fetched as soon as it is shown, a link
when it is clicked, raw HTML (``<img>``, ``srcset``, CSS ``url()``) in ways no filter can list.
So the answer is *parsed*, not matched with regular expressions: a CommonMark parser
(markdown-it-py) with GFM autolinks (``www.``, bare URLs, via linkify-it-py, run after
entities are decoded) reads it the way a client would, and then:

- text stays;
- a link or an image stays only if its target is an absolute ``http``/``https`` URL whose host
  is on the allowlist; a dropped link keeps its text, a dropped image its alt text;
- raw HTML is dropped, whatever it holds;
- reference definitions, ``javascript:``, ``data:``, relative and protocol-relative targets
  are dropped (a relative URL resolves against a host nobody checked).
- a schemeless autolink that is a bare name (``README.md``: a file name with a country-code
  extension) stays: it has no path, query, port or credentials to carry data.

Hosts are read the way a browser reads them, by a WHATWG URL parser (ada-url): ``\\`` is
``/``, schemes are case-insensitive, userinfo is dropped, percent-escapes, full-width forms and
IDN are decoded. A target must pass both as written and as the parser normalises it (which
percent-encodes ``\\``), so two readings of one URL cannot disagree about its host.

An answer in which nothing is dropped is returned exactly as written. Otherwise it is rebuilt
from the parse: the kept text with Markdown's link syntax characters escaped, so the output
cannot re-form a link, and filtering it again changes nothing.

Neighbours: ``llmos.kernel.policy`` decides which hosts are allowed and calls
:func:`filter_answer` on every answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import ada_url
from linkify_it import LinkifyIt  # type: ignore[import-untyped]
from markdown_it import MarkdownIt
from markdown_it.rules_core import linkify
from markdown_it.token import Token
from mdurl import encode as _encode

__all__ = ["filter_answer", "hosts_in"]


class _Reader(MarkdownIt):
    """CommonMark that keeps every link as written, for the filter to judge."""

    def validateLink(self, url: str) -> bool:
        return True  # every target is judged here, javascript: included

    def normalizeLink(self, url: str) -> str:
        return url  # as written; the filter checks it both as written and normalised

    def normalizeLinkText(self, link: str) -> str:
        return link


def _parser() -> MarkdownIt:
    md = _Reader("commonmark", {"html": True, "linkify": True}).enable(
        ["table", "strikethrough"]
    )
    # autolinks after entities are decoded and text is joined: "https&#58;//x" is a URL too
    md.core.ruler.disable("linkify")
    md.core.ruler.push("linkify_joined", linkify)
    return md


_MD = _parser()
_LINKS = LinkifyIt()
_ESCAPE = re.compile(r"([\\\[\]<>&`!*_])")
_REMOVED_LINK = "[link removed]"
# what a lenient client (or a browser given the text as HTML) might still read as a URL or a
# tag in plain text: "//host", "scheme://host" with a tab in the scheme, "<img src=//host>"
_LOOSE_URL = re.compile(r"(?i)(?:[a-z][a-z0-9+.\-]*:)?[/\\]{2,}[^\s<>\"'`/\\]+[^\s<>\"'`]*"
                        r"|\bwww\.[^\s<>\"'`]+")
_TAG = re.compile(r"<[A-Za-z/!?]")


def host_of(url: str) -> str:
    """The host a browser would contact for ``url``, or "" if it names none (or is not
    an absolute http(s) URL)."""
    try:
        parsed = ada_url.URL(url.strip())
    except ValueError:
        return ""
    if parsed.protocol not in ("http:", "https:"):
        return ""
    return str(parsed.hostname).lower()


def allowed(url: str, hosts: Iterable[str]) -> bool:
    """True when ``url`` reaches an allowed host however it is read."""
    wanted = {h.lower() for h in hosts}
    readings = {_reading(url), _reading(_encode(url))}
    return "" not in readings and readings <= wanted


def _reading(url: str) -> str:
    """The host of ``url``, or "" when it has none, or credentials to confuse a reader."""
    try:
        parsed = ada_url.URL(url.strip())
    except ValueError:
        return ""
    if parsed.username or parsed.password:
        return ""
    return host_of(url)


def hosts_in(text: str) -> set[str]:
    """The hosts of the URLs (``http(s)://``, ``www.``) written in ``text``."""
    found: set[str] = set()
    for match in _LINKS.match(text) or []:
        host = host_of(match.url)
        if host:
            found.add(host)
    # what an autolinker does not see ("https:\\host") is read the way a browser reads it
    for raw in re.findall(r"(?i)\bhttps?:[/\\]+[^\s<>\"']+", text):
        host = host_of(raw)
        if host:
            found.add(host)
    return found


def filter_answer(text: str, hosts: Iterable[str]) -> tuple[str, bool]:
    """Drop from ``text`` everything that could make a client fetch a URL off ``hosts``.

    Returns the filtered text and whether anything was dropped.
    """
    wanted = frozenset(h.lower() for h in hosts)
    out, dropped = text, False
    for _ in range(4):  # the rebuilt text is filtered again, until nothing changes
        tokens = _MD.parse(out)
        if not _drops(tokens, wanted):
            return out, dropped
        dropped = True
        out = _rebuild(tokens, wanted).strip()
    return _text(_plain(_MD.parse(out)), wanted), True


def _bare_name(href: str, markup: str) -> bool:
    """A schemeless autolink that is only a name ("README.md", "notes.io"): a client may make
    it clickable, but it carries no path, query, port or credentials, so nothing but the
    name itself could leave, and only on a click. File names look like this, so it stays."""
    if markup != "linkify" or not href.lower().startswith("http://"):
        return False
    written = href[len("http://"):]
    if written.lower().startswith("www.") or not re.fullmatch(r"[A-Za-z0-9.\-]+", written):
        return False
    return bool(host_of(href))


def _kept(tok: Token, hosts: frozenset[str]) -> bool:
    """A link or image that may stay: to an allowed host, or a bare name."""
    attr = "src" if tok.type == "image" else "href"
    target = str(tok.attrGet(attr) or "")
    return allowed(target, hosts) or _bare_name(target, tok.markup)


def _drops(tokens: Sequence[Token], hosts: frozenset[str]) -> bool:
    for tok in tokens:
        if tok.type in ("html_block", "html_inline"):
            return True
        if tok.type == "text" and (_TAG.search(tok.content) or any(
            not allowed(_as_url(m.group()), hosts) for m in _LOOSE_URL.finditer(tok.content)
        )):
            return True
        if tok.type in ("link_open", "image") and not _kept(tok, hosts):
            return True
        if tok.children and _drops(tok.children, hosts):
            return True
    return False


def _rebuild(tokens: Sequence[Token], hosts: frozenset[str]) -> str:
    """Markdown for the kept parts of a parse, block by block."""
    out: list[str] = []
    prefix: list[str] = []  # list item and quote markers of the enclosing blocks
    ordinal: list[int] = []
    cells = 0  # cells written in the current table row
    for tok in tokens:
        kind = tok.type
        if kind == "blockquote_open":
            prefix.append("> ")
        elif kind == "blockquote_close":
            prefix.pop()
        elif kind == "bullet_list_open":
            ordinal.append(0)
        elif kind == "ordered_list_open":
            ordinal.append(1)
        elif kind in ("bullet_list_close", "ordered_list_close"):
            ordinal.pop()
        elif kind == "list_item_open":
            n = ordinal[-1] if ordinal else 0
            out.append("".join(prefix) + (f"{n}. " if n else "- "))
            if n:
                ordinal[-1] = n + 1
        elif kind == "heading_open":
            out.append("".join(prefix) + "#" * int(tok.tag[1:]) + " ")
        elif kind == "tr_open":
            cells = 0
        elif kind in ("th_open", "td_open"):
            out.append(" | " if cells else "".join(prefix))
            cells += 1
        elif kind == "inline":
            if not out or out[-1].endswith("\n"):
                out.append("".join(prefix))
            out.append(_inline(tok.children or [], hosts))
        elif kind == "paragraph_close":
            out.append("\n" if tok.hidden else "\n\n")  # a tight list keeps its lines
        elif kind in ("heading_close", "tr_close"):
            out.append("\n\n" if kind == "heading_close" else "\n")
        elif kind in ("fence", "code_block"):
            fence = "`" * max(3, _longest_run(tok.content, "`") + 1)
            out.append(f"{fence}\n{tok.content}{fence}\n\n")
        elif kind == "hr":
            out.append("---\n\n")
        # html_block and everything else that carries no text is dropped
    return "".join(out)


def _inline(children: Sequence[Token], hosts: frozenset[str]) -> str:
    out: list[str] = []
    links: list[tuple[bool, str, bool]] = []  # (kept, href, autolink) per open link
    for tok in children:
        kind = tok.type
        skipping = any(not kept and auto for kept, _, auto in links)
        if kind == "link_open":
            href = str(tok.attrGet("href") or "")
            auto = tok.markup in ("linkify", "autolink")
            kept = _kept(tok, hosts)
            links.append((kept, href, auto))
            if kept and _bare_name(href, tok.markup):
                links[-1] = (False, href, False)  # written back as the plain name it was
            elif kept:
                out.append("[")
            elif auto and not skipping:
                out.append(_REMOVED_LINK)
        elif kind == "link_close":
            kept, href, _ = links.pop() if links else (False, "", False)
            if kept:
                out.append(f"]({_encode(href)})")
        elif skipping:
            continue
        elif kind == "text":
            out.append(_text(tok.content, hosts))
        elif kind == "code_inline":
            ticks = "`" * (_longest_run(tok.content, "`") + 1)
            out.append(f"{ticks} {tok.content} {ticks}")
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "image":
            src = str(tok.attrGet("src") or "")
            alt = _ESCAPE.sub(r"\\\1", tok.content)
            if allowed(src, hosts):
                out.append(f"![{alt}]({_encode(src)})")
            else:
                out.append(f"\\[image removed: {alt}\\]" if alt else "\\[image removed\\]")
        elif kind in ("em_open", "em_close", "strong_open", "strong_close", "s_open",
                      "s_close"):
            out.append(tok.markup)
        # html_inline is dropped
    return "".join(out)


def _text(text: str, hosts: frozenset[str]) -> str:
    """Plain text, escaped, with every URL-like run off the allowlist removed.

    A ``<`` that could open a tag becomes ``‹``: an escape would be undone by the next reader.
    """
    text = _TAG.sub(lambda m: "\u2039" + m.group()[1:], text)
    # URL-like runs: the loose shapes, and (for text that was never parsed, see _plain) what
    # an autolinker would find; the first reading of each stretch of text wins
    spans = [(m.start(), m.end(), _as_url(m.group())) for m in _LOOSE_URL.finditer(text)]
    spans += [(m.index, m.last_index, m.url) for m in _LINKS.match(text) or []
              if not _bare_name(m.url, "linkify")]
    out: list[str] = []
    at = 0
    for start, end, url in sorted(spans):
        if start < at:
            continue
        out.append(_ESCAPE.sub(r"\\\1", text[at:start]))
        keep = allowed(url, hosts)
        out.append(_ESCAPE.sub(r"\\\1", text[start:end]) if keep else _REMOVED_LINK)
        at = end
    out.append(_ESCAPE.sub(r"\\\1", text[at:]))
    return "".join(out)


def _as_url(run: str) -> str:
    return f"http://{run}" if run.lower().startswith("www.") else run


def _plain(tokens: Sequence[Token]) -> str:
    """Only the text of a parse (the last resort when rebuilding does not settle)."""
    parts: list[str] = []
    for tok in tokens:
        if tok.type in ("text", "code_inline"):
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak", "paragraph_close"):
            parts.append("\n")
        elif tok.children:
            parts.append(_plain(tok.children))
    return "".join(parts)


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(r) for r in runs), default=0)
