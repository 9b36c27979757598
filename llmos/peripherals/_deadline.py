"""The browser's clock: one deadline over a whole fetch, enforced on every blocking step.

httpx's timeouts are per operation: a read may take up to its timeout, and a server that sends
one header line (or one body byte) just inside it holds the fetch for ever. Here the deadline
of the fetch in progress lives in a context variable, and every step that can block is cut
to the time that is left:

- the name lookup and the rendering of a page as text run in a helper thread that the fetch
  waits for only until the deadline (``getaddrinfo`` and a parser cannot be interrupted; a
  late result is dropped, its thread ends on its own, bounded by the page size);
- every connect, TLS handshake, read and write of the connection gets a socket timeout no
  longer than what is left, and none starts once the deadline has passed.

So no single blocking call outlives the deadline, however the server trickles its bytes.

Invariants: without an active :func:`deadline` the transport behaves like httpx's own; the
deadline is per thread of control (a ``ContextVar``), so concurrent fetches do not share it.

Neighbours: ``llmos.peripherals.browser`` opens a :func:`deadline` around each fetch, builds its
client on :func:`transport` and its gate on :func:`bounded`; ``_netcheck`` calls the resolver.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import httpcore
import httpx

from llmos.errors import Fault, PeripheralError
from llmos.peripherals._netcheck import Resolver
from llmos.peripherals.base import quote

__all__ = ["bounded", "deadline", "left", "transport", "within"]

T = TypeVar("T")
_DEADLINE: ContextVar[float | None] = ContextVar("llmos_fetch_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Bound every network step inside the block to ``seconds`` from now, in total."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield seconds
    finally:
        _DEADLINE.reset(token)


def left() -> float | None:
    """Seconds until the active deadline (negative once passed), or None without one."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


def _cut(timeout: float | None, exc: type[Exception]) -> float | None:
    """``timeout`` shortened to the time left; ``exc`` if none is left."""
    remaining = left()
    if remaining is None:
        return timeout
    if remaining <= 0:
        raise exc("the fetch's total time limit passed")
    return remaining if timeout is None else min(timeout, remaining)


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write stops at the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cut(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cut(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _cut(timeout, httpcore.ConnectTimeout)
        )
        return _Stream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's socket backend, with connections cut to the deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _cut(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _Stream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("the browser does not open unix sockets")

    def sleep(self, seconds: float) -> None:
        remaining = left()
        time.sleep(max(0.0, seconds if remaining is None else min(seconds, remaining)))


def transport() -> httpx.HTTPTransport:
    """An httpx transport that keeps no connections, reads no proxy settings, and whose every
    socket operation obeys the active :func:`deadline`."""
    base = httpx.HTTPTransport(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))
    # httpx takes no network backend, so its pool is rebuilt on one (same TLS, no keep-alive).
    # A pooled connection would also outlive the SNI check of the hop that opened it.
    if not isinstance(getattr(base, "_pool", None), httpcore.ConnectionPool):
        raise PeripheralError(
            f"httpx {httpx.__version__} lays out its transport differently: the browser cannot "
            "bound its fetches; install httpx<1 (or pass transport=)"
        )
    base._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_keepalive_connections=0,
        network_backend=_Backend(),
    )
    return base


def within(work: Callable[[], T], late: Callable[[], Fault]) -> T:
    """``work()``, waited for only until the active deadline; ``late()`` is raised after it.

    For steps that cannot be interrupted (``getaddrinfo``, rendering a large page): they run
    in a helper thread, and a late result is dropped while the thread ends on its own. Without
    an active deadline, ``work`` runs here.
    """
    remaining = left()
    if remaining is None:
        return work()
    if remaining <= 0:
        raise late()
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name="llmos-fetch-step", daemon=True)
    worker.start()
    worker.join(remaining)
    if worker.is_alive():
        raise late()
    if failure:
        raise failure[0]
    return result[0]


def bounded(resolver: Resolver) -> Resolver:
    """``resolver``, waited for only until the active deadline (see :func:`within`)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        return within(
            lambda: resolver(host, port),
            lambda: Fault(
                f"refused: looking up {quote(host)} took longer than the fetch's time limit; "
                "try again later"
            ),
        )

    return resolve
