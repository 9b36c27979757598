"""The browser's page reader: which responses are text, in which charsets, and how they
become plain text for the model.

- Only text-like content types are read (``text/*``, JSON, XML, XHTML).
- Content-Encoding is undone here, a chunk at a time, so output is bounded before it is made
  (:class:`Inflater`: identity, gzip, deflate; anything else is refused).
- Only the charsets in ``_CHARSETS`` are decoded: labels are matched as text against a fixed
  table, never looked up in Python's codec registry, so a server cannot pick a codec that is
  slow on crafted input (punycode), not a text encoding (zlib, base64) or one that rewrites
  escapes (unicode_escape, utf-7). A label not in the table is a fault before the body is read.
- HTML becomes text with inscriptis; control characters are dropped, blank runs squeezed.

Neighbour: ``llmos.peripherals.browser`` calls these on every response it reads.
"""

from __future__ import annotations

import re
import zlib

from inscriptis import get_text

from llmos.errors import Fault
from llmos.peripherals.base import quote

__all__ = ["Inflater", "codec", "text_type", "to_text"]

_TEXT_TYPES = frozenset({"application/json", "application/xhtml+xml", "application/xml"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Charset labels read (lower case, '_' as '-') -> Python codec. Each decodes in linear time;
# punycode, idna, utf-7, the escape codecs and bytes-to-bytes codecs are not text encodings
# of web pages and some are slow on crafted input, so any label not listed is refused.
_CHARSETS: dict[str, str] = {
    **dict.fromkeys(("utf-8", "utf8", "unicode-1-1-utf-8"), "utf-8"),
    **dict.fromkeys(("utf-16", "utf-16le", "utf-16be"), "utf-16"),
    "utf-16le": "utf-16-le",
    "utf-16be": "utf-16-be",
    # WHATWG: latin-1 and ascii labels mean windows-1252
    **dict.fromkeys(
        ("ascii", "us-ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1",
         "windows-1252", "cp1252"), "cp1252"),
    **dict.fromkeys(("iso-8859-15", "iso8859-15", "latin-9", "latin9"), "iso8859-15"),
    **dict.fromkeys(("iso-8859-2", "iso8859-2", "latin2", "windows-1250", "cp1250"), "cp1250"),
    **dict.fromkeys(("windows-1251", "cp1251"), "cp1251"),
    "koi8-r": "koi8-r",
    **dict.fromkeys(("shift-jis", "sjis", "windows-31j", "ms-kanji", "cp932"), "cp932"),
    **dict.fromkeys(("euc-jp",), "euc-jp"),
    **dict.fromkeys(("gb2312", "gbk", "gb18030"), "gb18030"),
    **dict.fromkeys(("big5", "big5-hkscs"), "big5hkscs"),
    **dict.fromkeys(("euc-kr", "ks-c-5601-1987", "cp949"), "cp949"),
}


def text_type(content_type: str, where: str) -> str:
    """The media type of a ``Content-Type`` header, or a fault when it is not text."""
    mime = content_type.split(";")[0].strip().lower()
    if not (
        mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))
    ):
        raise Fault(
            f"refused: {where} is {quote(mime, 60) if mime else 'of no declared type'}, not "
            "text; the browser reads only text, HTML, JSON and XML"
        )
    return mime


def codec(label: str | None, where: str) -> str:
    """The Python codec for a charset label (UTF-8 when none is given), or a fault."""
    found = _CHARSETS.get((label or "utf-8").strip().lower().replace("_", "-"))
    if found is None:
        raise Fault(
            f"refused: {where} declares the charset {quote(label, 40)}, which the browser does "
            "not decode (it reads UTF-8, UTF-16, Latin-1/Windows-1252 and a few common "
            "national charsets); try another page"
        )
    return found


def to_text(raw: bytes, codec: str, mime: str) -> str:
    """The body as tidy plain text: decoded (bad bytes replaced), HTML rendered as text."""
    text = raw.decode(codec, errors="replace")
    if mime in _HTML_TYPES:
        text = get_text(text)
    lines = [_CONTROL.sub("", line).rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class Inflater:
    """Content-Encoding undone here, so the output can be bounded before it is made."""

    def __init__(self, encoding: str, where: str) -> None:
        encoding = encoding.strip().lower()
        self._zlib: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
        elif encoding not in ("identity", ""):
            raise Fault(
                f"refused: {where} uses the unsupported Content-Encoding {quote(encoding, 40)}"
            )
        self._where = where

    def feed(self, chunk: bytes, room: int) -> bytes:
        """Up to ``room`` decoded bytes from ``chunk`` (the rest is never produced)."""
        if self._zlib is None:
            return chunk[: max(room, 0)]
        if room <= 0 or self._zlib.eof:
            return b""
        try:
            return self._zlib.decompress(chunk, room)
        except zlib.error:
            raise Fault(f"could not read {self._where}: its compressed data is corrupt") from None
