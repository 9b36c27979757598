"""The browser: reads public web pages as text, for the model, without becoming a door inward.

A fetch is one walk over at most ``max_redirects + 1`` hops. Each hop:

1. reads the URL once with ``httpx.URL`` and refuses anything but a plain ``http(s)://host``
   URL (no credentials, whitespace, backslashes, other schemes or ports outside ``ports``);
2. turns the host into addresses *once*: numeric hosts are read by ``_netcheck.host_address``,
   names go to the injectable resolver, and every answer must be public;
3. connects to a checked address itself: the request URL carries the IP, the ``Host`` header
   and TLS SNI (``sni_hostname``) carry the name, so no second lookup can rebind the name;
4. follows a redirect by hand, re-checking the new URL from step 1.

Invariants: the client never reads proxy settings from the environment (``trust_env=False``);
no cookie is ever stored; the body is decompressed here, a chunk at a time, and never beyond
``max_bytes``; the whole fetch (lookups, connects, headers, body, redirects and retries) ends
by ``total_timeout_s``, because every blocking step is cut to the time left (``_deadline``);
only text-like content types are read, and only in a short list of charsets, each decoded in
linear time; any other is refused before the body is read (``_page``). Outside text in a
fault (a redirect's URL, a header, an httpx error) is quoted on one line and cut
(:func:`~llmos.peripherals.base.quote`). Host:port pairs in ``allow_hosts`` skip the
public-address and port checks and nothing else (tests serve pages on loopback). Every refusal
is a :class:`~llmos.errors.Fault` that says why, and every page is a
:class:`~llmos.peripherals.base.Document` whose source is the final URL, so the kernel stores
it as untrusted with its provenance.

Neighbours: ``llmos.peripherals._netcheck`` classifies addresses; ``llmos.kernel.syscall``
runs these syscalls under ``limits``; ``llmos.kernel.ground`` constrains the ``url`` field to
URLs written in trusted pages.
"""

from __future__ import annotations

import http.cookiejar
import math
import re
import time
from collections.abc import Callable, Iterable

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from llmos.errors import Fault, UsageError
from llmos.peripherals import _deadline, _netcheck, _page
from llmos.peripherals._netcheck import Resolver, Target, system_resolver
from llmos.peripherals.base import (
    Document,
    Example,
    Limits,
    Peripheral,
    grounded,
    quote,
    syscall,
)

__all__ = [
    "Browser",
    "FetchArgs",
    "Resolver",
    "SearchPageArgs",
    "best_passages",
    "system_resolver",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_HEADER_BYTES = 64 * 1024
_OP_TIMEOUT_S = 5.0  # one connect or read; the whole fetch is bounded by total_timeout_s


class FetchArgs(BaseModel):
    """Arguments of ``browser.fetch``."""

    model_config = ConfigDict(extra="forbid")
    url: str = grounded(
        "url", description="The http(s) URL of the page, as the user wrote it.", min_length=1,
        max_length=2048,
    )


class SearchPageArgs(BaseModel):
    """Arguments of ``browser.search_page``."""

    model_config = ConfigDict(extra="forbid")
    url: str = grounded(
        "url", description="The http(s) URL of the page, as the user wrote it.", min_length=1,
        max_length=2048,
    )
    query: str = Field(
        min_length=1, max_length=300, description="Words to look for in the page."
    )


class _Transient(Exception):
    """A failure worth another attempt: connect error, timeout, HTTP 429 or 5xx."""


class Browser(Peripheral):
    """Reads public web pages as plain text.

    Args:
        allow_hosts: ``"host:port"`` pairs opened even when private (e.g. ``"127.0.0.1:8123"``).
        ports: ports open on public hosts.
        max_bytes: decompressed bytes read from one page; the rest is cut.
        total_timeout_s: seconds one fetch may take, redirects and retries included.
        max_redirects: redirects followed before the fetch is refused.
        attempts: tries per hop on transient errors (connect, timeout, 429, 5xx).
        resolver: host name → addresses; the system resolver by default.
        transport: the httpx transport; a fresh one that keeps no connections by default.
        clock: monotonic seconds, for the deadline.
    """

    name = "browser"
    limits: Limits = Limits(timeout_s=30.0, max_output_chars=4000)
    # generic worked examples: look up one fact on a page the user names, answer from it
    examples: tuple[Example, ...] = (
        Example(
            question="What does https://example.org/news/launch say about the release date?",
            calls=((
                "browser.search_page",
                {"url": "https://example.org/news/launch", "query": "release date"},
                "The release date is 3 May. The new version adds offline maps.",
            ),),
            answer="It says the release date is 3 May.",
        ),
        Example(
            question="Summarise https://example.com/blog/tea",
            calls=((
                "browser.fetch",
                {"url": "https://example.com/blog/tea"},
                "Green tea. Steep green tea at 80 degrees for two minutes; hotter water makes "
                "it bitter.",
            ),),
            answer="Steep green tea at 80 degrees for two minutes; hotter water makes it bitter.",
        ),
    )

    def __init__(
        self,
        *,
        allow_hosts: Iterable[str] = (),
        ports: Iterable[int] = (80, 443),
        max_bytes: int = 1_000_000,
        total_timeout_s: float = 15.0,
        max_redirects: int = 5,
        attempts: int = 3,
        resolver: Resolver | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < total_timeout_s < self.limits.timeout_s:
            raise UsageError(
                "total_timeout_s must be above 0 and below the kernel's "
                f"{self.limits.timeout_s:g} s limit for the browser (got {total_timeout_s!r})",
                code="browser-timeout",
            )
        if max_bytes < 1 or attempts < 1 or max_redirects < 0:
            raise UsageError(
                "max_bytes and attempts must be at least 1 and max_redirects at least 0",
                code="browser-limits",
            )
        self.max_bytes = max_bytes
        self.total_timeout_s = total_timeout_s
        self.max_redirects = max_redirects
        self.attempts = attempts
        self.gate = _netcheck.Gate(
            allow_hosts, ports, _deadline.bounded(resolver or system_resolver)
        )
        self._clock = clock
        if transport is None:  # no keep-alive, every socket operation cut to the deadline
            transport = _deadline.transport()
        no_cookies = http.cookiejar.CookieJar(
            http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
        )
        self._client = httpx.Client(
            transport=transport, trust_env=False, follow_redirects=False, cookies=no_cookies
        )

    def close(self) -> None:
        """Close the HTTP client and its transport."""
        self._client.close()

    @syscall(sensitive=True)
    def fetch(self, args: FetchArgs) -> Document:
        """Read the web page at `url` as plain text."""
        url, text = self.read(args.url)
        return Document(text=text, source=url)

    @syscall(sensitive=True)
    def search_page(self, args: SearchPageArgs) -> Document:
        """Read the web page at `url` and return only the passages that best match `query`."""
        url, text = self.read(args.url)
        found = best_passages(text, args.query)
        if not found:
            raise Fault(
                f"no passage of {quote(url)} shares a word with {args.query!r}; try other "
                "words, or browser.fetch to read the whole page"
            )
        return Document(text=found, source=url)

    # -- the fetch walk ---------------------------------------------------------------------

    def read(self, url: str) -> tuple[str, str]:
        """Fetch ``url`` under every check; return the final URL and the page as text."""
        with _deadline.deadline(self.total_timeout_s):
            return self._walk(url, self._clock() + self.total_timeout_s)

    def _walk(self, url: str, deadline: float) -> tuple[str, str]:
        target = self.gate.check(url)
        for _hop in range(self.max_redirects + 1):
            response = self._send(target, deadline)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    target = self.gate.check(_join(target.url, location))
                    continue
                return _final(target.url), self._body(response, target.url, deadline)
            finally:
                response.close()
        raise Fault(
            f"refused: {quote(url)} redirects more than {self.max_redirects} times; "
            "fetch the final address directly"
        )

    def _left(self, deadline: float) -> float:
        """Seconds left of this fetch, by the injected clock and by the socket deadline."""
        socket_left = _deadline.left()
        return min(deadline - self._clock(), math.inf if socket_left is None else socket_left)

    def _late(self, url: httpx.URL) -> Fault:
        return Fault(
            f"refused: {_where(url)} took longer than {self.total_timeout_s:g} s; try again "
            "later or another page"
        )

    def _send(self, target: Target, deadline: float) -> httpx.Response:
        """One hop with bounded retries; each try connects to a checked address, in turn."""
        url = target.url
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.25, max=2.0),
            retry=retry_if_exception_type(_Transient),
            sleep=lambda seconds: time.sleep(max(0.0, min(seconds, self._left(deadline)))),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    n = attempt.retry_state.attempt_number - 1
                    address = target.addresses[n % len(target.addresses)]
                    return self._send_once(url, address, deadline)
        except _Transient as exc:
            if self._left(deadline) <= 0:
                raise self._late(url) from None
            raise Fault(f"could not read {_where(url)}: {exc}; try again later") from None
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _send_once(
        self, url: httpx.URL, address: _netcheck.IPAddress, deadline: float
    ) -> httpx.Response:
        remaining = self._left(deadline)
        if remaining <= 0:
            raise self._late(url)
        timeout = httpx.Timeout(min(remaining, _OP_TIMEOUT_S)).as_dict()
        extensions: dict[str, object] = {"timeout": timeout}
        if url.scheme == "https" and _netcheck.host_address(url.host) is None:
            extensions["sni_hostname"] = url.host.rstrip(".")
        request = httpx.Request(
            "GET",
            url.copy_with(host=str(address), fragment=None),
            headers={
                "Host": url.netloc.decode("ascii"),
                "User-Agent": "llmos-browser/0.1",
                "Accept": "text/html, text/plain;q=0.9, application/json;q=0.8, */*;q=0.1",
                "Accept-Encoding": "gzip, deflate",
            },
            extensions=extensions,
        )
        try:
            response = self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            raise _Transient(f"{type(exc).__name__}: {quote(exc)}") from exc
        except httpx.HTTPError as exc:
            raise Fault(
                f"could not read {_where(url)} ({type(exc).__name__}: {quote(exc)})"
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            response.close()
            raise _Transient(f"the server answered HTTP {response.status_code}")
        return response

    def _body(self, response: httpx.Response, url: httpx.URL, deadline: float) -> str:
        """The response as readable text, after the status, header and content-type checks."""
        where = _where(url)
        if response.status_code >= 300:
            raise Fault(f"{where} answered HTTP {response.status_code}; check the URL")
        size = sum(len(k) + len(v) for k, v in response.headers.raw)
        if size > _MAX_HEADER_BYTES:
            raise Fault(
                f"refused: {where} sent {size} bytes of headers (limit {_MAX_HEADER_BYTES})"
            )
        mime = _page.text_type(response.headers.get("content-type", ""), where)
        codec = _page.codec(response.charset_encoding, where)  # refused before the body is read
        raw, cut = self._read_capped(response, url, deadline)
        text = _deadline.within(lambda: _page.to_text(raw, codec, mime), lambda: self._late(url))
        if cut:
            text += f"\n[cut: the page is longer than {self.max_bytes} bytes]"
        return text

    def _read_capped(
        self, response: httpx.Response, url: httpx.URL, deadline: float
    ) -> tuple[bytes, bool]:
        where = _where(url)
        chunks: Iterable[bytes]
        if response.is_stream_consumed:  # built in memory (a test transport): httpx decoded it
            chunks, inflate = [response.content], _page.Inflater("identity", where)
        else:
            chunks = response.iter_raw()
            inflate = _page.Inflater(response.headers.get("content-encoding", "identity"), where)
        body = bytearray()
        wire = 0
        try:
            for chunk in chunks:
                if self._left(deadline) <= 0:
                    raise self._late(url)
                wire += len(chunk)
                body += inflate.feed(chunk, self.max_bytes + 1 - len(body))
                if len(body) > self.max_bytes or wire > self.max_bytes:
                    return bytes(body[: self.max_bytes]), True
        except httpx.TimeoutException:
            if self._left(deadline) <= 0:
                raise self._late(url) from None
            raise Fault(f"refused: {where} stopped sending; try again later") from None
        except httpx.HTTPError as exc:
            raise Fault(f"could not read {where} ({type(exc).__name__}: {quote(exc)})") from None
        return bytes(body), False


def _join(base: httpx.URL, location: str) -> str:
    try:
        return str(base.join(location))
    except (httpx.InvalidURL, ValueError) as exc:
        raise Fault(
            f"refused: {_where(base)} redirects to an invalid URL ({quote(exc)})"
        ) from None


def _final(url: httpx.URL) -> str:
    return str(url.copy_with(fragment=None))


def _where(url: httpx.URL) -> str:
    """A URL for a message: the final URL, quoted and cut (a redirect can make it anything)."""
    return quote(_final(url), 200)


# -- passages -------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_STOP = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by for from has have how in is it its of on or that the this to "
        "was were what when where which who why will with",
    )
)
_PASSAGE_CHARS = 600  # a passage longer than this is split at sentence ends


def best_passages(text: str, query: str, *, k: int = 3) -> str:
    """The ``k`` passages of ``text`` sharing the most (rarest) words with ``query``.

    Passages are paragraphs (blank-line separated), long ones split at sentence ends. A passage
    scores the sum of ``log(1 + n / df)`` over the query words it contains, so rare words weigh
    more. The winners come back in page order, each headed by its position; "" if none match.
    """
    passages = _passages(text)
    terms = {_stem(w) for w in _WORD.findall(query.lower())} - _STOP
    bags = [{_stem(w) for w in _WORD.findall(p.lower())} for p in passages]
    df = {t: sum(t in bag for bag in bags) for t in terms}
    scores = [
        sum(math.log(1 + len(passages) / df[t]) for t in terms if t in bag) for bag in bags
    ]
    ranked = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
    chosen = sorted(ranked[:k])
    return "\n\n".join(f"[passage {i + 1} of {len(passages)}]\n{passages[i]}" for i in chosen)


def _passages(text: str) -> list[str]:
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        while len(block) > _PASSAGE_CHARS:
            cut = max(block.rfind(". ", 0, _PASSAGE_CHARS), block.rfind("\n", 0, _PASSAGE_CHARS))
            cut = cut + 1 if cut > 0 else _PASSAGE_CHARS
            out.append(block[:cut].strip())
            block = block[cut:].strip()
        if block:
            out.append(block)
    return out


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word
