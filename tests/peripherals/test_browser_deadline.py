"""The browser's time and charset bounds against adversarial servers on loopback.

One deadline covers the whole fetch: a server that trickles its header lines or its body, or a
name lookup that never answers, ends in a fault soon after ``total_timeout_s``, and the
connection is hung up. Only a short list of charsets is decoded; any other label is refused
before the body is read. Faults quote what the server sent on one bounded line.
These tests check that the fetch is bounded, not how fast it is: the slack is generous.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from llmos.errors import Fault
from llmos.kernel.syscall import SyscallTable
from llmos.peripherals.browser import Browser, FetchArgs

TIMEOUT = 1.5  # the browser's total_timeout_s in these tests
SLACK = 2.0  # generous: the machine is shared and slow; the adversaries run for 20 s
Behaviour = Callable[[socket.socket, threading.Event], None]


class Adversary:
    """A raw TCP server: reads one request head, then plays ``behave`` on the connection."""

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.stop = threading.Event()
        self.hung_up: list[float] = []  # when the client went away, per connection
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.behave(conn, self.stop)
            except OSError:
                pass
            self.hung_up.append(time.monotonic())

    def close(self) -> None:
        self.stop.set()
        self.server.close()


def trickle_headers(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
    for i in range(100):  # one header line every 0.2 s, for 20 s
        if stop.wait(0.2):
            return
        conn.sendall(f"X-Pad-{i}: {i}\r\n".encode())


def trickle_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(100):  # one byte every 0.2 s, for 20 s
        if stop.wait(0.2):
            return
        conn.sendall(b"x")


def page(charset: str, body: bytes) -> Behaviour:
    def send(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset={charset}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )

    return send


def raw(response: bytes) -> Behaviour:
    def send(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(response)

    return send


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], Adversary]]:
    started: list[Adversary] = []

    def start(behave: Behaviour) -> Adversary:
        started.append(Adversary(behave))
        return started[-1]

    yield start
    for adversary in started:
        adversary.close()


def browser_for(adversary: Adversary, *, max_bytes: int = 1_000_000, attempts: int = 3) -> Browser:
    return Browser(allow_hosts=[f"127.0.0.1:{adversary.port}"], total_timeout_s=TIMEOUT,
                   max_bytes=max_bytes, attempts=attempts)


def timed_fault(dev: Browser, url: str) -> tuple[float, Fault]:
    start = time.monotonic()
    with pytest.raises(Fault) as caught:
        dev.fetch(FetchArgs(url=url))
    return time.monotonic() - start, caught.value


@pytest.mark.parametrize("behave", [trickle_headers, trickle_body], ids=["headers", "body"])
def test_a_trickling_server_is_cut_off_at_the_deadline(
    serve: Callable[[Behaviour], Adversary], behave: Behaviour
) -> None:
    adversary = serve(behave)
    dev = browser_for(adversary)
    try:
        elapsed, fault = timed_fault(dev, f"http://127.0.0.1:{adversary.port}/")
    finally:
        dev.close()
    assert elapsed < TIMEOUT + SLACK, f"the fetch took {elapsed:.1f} s"
    assert f"took longer than {TIMEOUT:g} s" in fault.message, fault.message
    for _ in range(40):  # the browser hung up: the server's next write fails
        if adversary.hung_up:
            break
        time.sleep(0.1)
    assert adversary.hung_up, "the connection was left open"


def test_the_device_thread_is_free_again_through_the_syscall_table(
    serve: Callable[[Behaviour], Adversary],
) -> None:
    adversary = serve(trickle_headers)
    table = SyscallTable([browser_for(adversary)])
    start = time.monotonic()
    out = table.dispatch("browser.fetch", {"url": f"http://127.0.0.1:{adversary.port}/"})
    assert time.monotonic() - start < TIMEOUT + SLACK
    assert out.status == "fault" and "took longer than" in out.text, out.text


def test_a_tls_handshake_that_never_answers_is_cut_off() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    port = server.getsockname()[1]
    dev = Browser(allow_hosts=[f"127.0.0.1:{port}"], total_timeout_s=TIMEOUT)
    try:
        elapsed, fault = timed_fault(dev, f"https://127.0.0.1:{port}/")
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert elapsed < TIMEOUT + SLACK, f"the fetch took {elapsed:.1f} s"
    assert "took longer than" in fault.message, fault.message


def test_a_name_lookup_that_never_answers_is_cut_off() -> None:
    def hanging_resolver(host: str, port: int) -> list[str]:
        time.sleep(20)
        return ["93.184.215.14"]

    dev = Browser(total_timeout_s=TIMEOUT, resolver=hanging_resolver)
    elapsed, fault = timed_fault(dev, "http://slow-dns.example/")
    assert elapsed < TIMEOUT + SLACK, f"the fetch took {elapsed:.1f} s"
    assert "took longer than" in fault.message and "slow-dns.example" in fault.message


def test_rendering_a_huge_page_does_not_outlive_the_deadline(
    serve: Callable[[Behaviour], Adversary],
) -> None:
    """Tag-dense HTML takes seconds per megabyte to render; the fetch still returns in time
    (with the page on a fast machine, with a fault on a slow one)."""
    html = b"<html><body>" + b"<p>a</p>" * 200_000 + b"</body></html>"
    adversary = serve(raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        + f"Content-Length: {len(html)}\r\nConnection: close\r\n\r\n".encode() + html
    ))
    dev = browser_for(adversary, max_bytes=len(html))
    start = time.monotonic()
    try:
        dev.fetch(FetchArgs(url=f"http://127.0.0.1:{adversary.port}/"))
    except Fault as fault:
        assert "took longer than" in fault.message, fault.message
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + SLACK, f"the fetch took {elapsed:.1f} s"


EXOTIC = ["punycode", "idna", "utf-7", "unicode_escape", "raw-unicode-escape", "rot13", "zlib",
          "base64", "hex", "uu", "bz2", "utf-32", "x-no-such-charset"]


@pytest.mark.parametrize("charset", EXOTIC)
def test_charsets_outside_the_list_are_refused_before_decoding(
    serve: Callable[[Behaviour], Adversary], charset: str
) -> None:
    body = b"a" * 200_000 + b"-" + b"9zz" * 100_000  # slow work for a quadratic decoder
    adversary = serve(page(charset, body))
    dev = browser_for(adversary, max_bytes=1_000_000)
    elapsed, fault = timed_fault(dev, f"http://127.0.0.1:{adversary.port}/")
    assert elapsed < TIMEOUT + SLACK
    assert "does not decode" in fault.message and repr(charset) in fault.message, fault.message
    assert "try another page" in fault.message


READABLE = [
    ("utf-8", "café ✓".encode(), "café ✓"),
    ("ISO-8859-1", b"caf\xe9", "café"),
    ("windows-1252", b"\x80 5", "€ 5"),
    ("us-ascii", b"plain", "plain"),
    ("UTF-16", "wörter".encode("utf-16"), "wörter"),
    ("utf-16le", "wörter".encode("utf-16-le"), "wörter"),
    ("Shift_JIS", "日本語".encode("shift_jis"), "日本語"),
    ("gb2312", "中文".encode("gb2312"), "中文"),
    ("koi8-r", "привет".encode("koi8-r"), "привет"),
]


@pytest.mark.parametrize(("charset", "body", "text"), READABLE, ids=[r[0] for r in READABLE])
def test_common_charsets_are_read(
    serve: Callable[[Behaviour], Adversary], charset: str, body: bytes, text: str
) -> None:
    adversary = serve(page(charset, body))
    dev = browser_for(adversary)
    assert dev.fetch(FetchArgs(url=f"http://127.0.0.1:{adversary.port}/")).text == text


def one_line_and_short(message: str) -> None:
    assert "\n" not in message and "\r" not in message, message
    assert len(message) < 700, f"{len(message)} characters: {message[:200]}"


def test_a_huge_charset_label_is_quoted_short(serve: Callable[[Behaviour], Adversary]) -> None:
    adversary = serve(page("x" * 5000, b"hello"))
    _, fault = timed_fault(browser_for(adversary), f"http://127.0.0.1:{adversary.port}/")
    one_line_and_short(fault.message)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 302 Found\r\nLocation: http://[::1" + b"A" * 5000 + b"\r\n\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/" + b"A" * 5000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: image/" + b"png" * 2000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: " + b"br" * 2000 + b"\r\n"
        b"Content-Type: text/plain\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"Bad header line\\n\\r" * 200 + b"\r\n\r\n",
    ],
    ids=["invalid redirect", "redirect to a closed port", "content type", "content encoding",
         "malformed headers"],
)
def test_faults_quote_what_the_server_sent_on_one_short_line(
    serve: Callable[[Behaviour], Adversary], response: bytes
) -> None:
    adversary = serve(raw(response))
    _, fault = timed_fault(browser_for(adversary, attempts=1),
                           f"http://127.0.0.1:{adversary.port}/")
    one_line_and_short(fault.message)
