"""The browser's gate: which URLs may be opened, and which addresses count as public.

The browser may open a connection only to an address that is public: reachable on the open
internet and not a door into the machine or the network it runs on (loopback, private ranges,
link-local cloud metadata, CGNAT, multicast, reserved space). Four rules make that hold:

- a URL is read once (``httpx.URL``), and the parsed object is what gets checked and sent;
  whitespace, backslashes, credentials and schemes other than http/https are refused first;
- a host is read the way ``inet_aton`` and WHATWG parsers read it: numeric forms
  (``2130706433``, ``0x7f000001``, ``127.1``, ``0177.0.0.1``) are turned into the IPv4 address
  they denote, never passed on to a resolver as a "name";
- every address a name resolves to is checked, and one bad answer refuses the whole name;
- IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are refused
  outright, naming the embedded address, because the network may route them to that address.

``ipaddress.is_global`` alone is not enough on CPython 3.11: it reports multicast,
``::127.0.0.1``, NAT64, 6to4 and ``192.0.0.192`` (Oracle Cloud metadata) as global, so explicit
deny lists come first and ``is_global`` is the last word.

Neighbours: ``llmos.peripherals.browser`` asks :meth:`Gate.check` about every URL it is about
to open (redirects included) and connects only to the addresses in the returned
:class:`Target`; the resolver is called once per check, so nothing can rebind in between.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

from llmos.errors import Fault, UsageError
from llmos.peripherals.base import quote

__all__ = [
    "Gate",
    "IPAddress",
    "Resolver",
    "Target",
    "host_address",
    "name_refusal",
    "parse_address",
    "refusal",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""``resolver(host, port)`` returns the host's addresses as strings; raises OSError if none."""


_V4_DENY: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address (also Alibaba Cloud metadata)"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (cloud metadata lives here)"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address (Oracle Cloud metadata lives here)"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
)

# Ranges whose address embeds an IPv4 address: (network, description, where the IPv4 sits).
_V6_EMBEDDING: tuple[tuple[str, str], ...] = (
    ("::ffff:0:0/96", "an IPv4-mapped IPv6 address"),
    ("::/96", "an IPv4-compatible IPv6 address"),
    ("64:ff9b::/96", "a NAT64 address"),
    ("64:ff9b:1::/48", "a local NAT64 address"),
    ("2002::/16", "a 6to4 address"),
    ("2001::/32", "a Teredo address"),
)

_V6_DENY: tuple[tuple[str, str], ...] = (
    ("::1/128", "a loopback address"),
    ("::/128", "an unspecified address"),
    ("100::/64", "a discard-only address"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local (private) address (AWS metadata fd00:ec2::254 lives here)"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)

_V4_NETS = tuple((ipaddress.IPv4Network(n), why) for n, why in _V4_DENY)
_V6_NETS = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6_DENY)
_V6_EMBED_NETS = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6_EMBEDDING)

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_NUMERIC_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")

# Names that never lead anywhere public, whatever a resolver answers for them.
_DENIED_SUFFIXES = (".localhost", ".internal", ".local", ".home.arpa")
_DENIED_NAMES = frozenset({"localhost", "metadata.google.internal"})


def parse_address(text: str) -> IPAddress:
    """An address as a resolver writes it (``"10.0.0.5"``, ``"fe80::1%eth0"``); else ValueError."""
    return ipaddress.ip_address(text)


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address, or None when it is.

    The reason reads as the end of a sentence: "a loopback address", "an IPv4-mapped IPv6
    address embedding 127.0.0.1".
    """
    if isinstance(ip, ipaddress.IPv4Address):
        for net4, why in _V4_NETS:
            if ip in net4:
                return why
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return "the broadcast address"
    else:
        for net6, why in _V6_NETS:
            if ip in net6:
                return why
        if ip.scope_id:
            return "a scoped (zone-id) address"
        for net6, why in _V6_EMBED_NETS:
            if ip in net6:
                embedded = _embedded_ipv4(ip, net6)
                return f"{why} embedding {embedded}" if embedded else why
    if ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local:
        return "a reserved address"
    if not ip.is_global:
        return "a private address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address, net: ipaddress.IPv6Network) -> str | None:
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        return str(ip.sixtofour)
    if ip.teredo is not None:
        return str(ip.teredo[1])  # the client address, the one a relay would forward to
    if net.prefixlen == 96:  # compatible and NAT64: the last 32 bits
        return str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return None


def host_address(host: str) -> IPAddress | None:
    """Read a URL host: the IP address it denotes, or None when it is a DNS name.

    ``host`` is the host as ``httpx.URL`` gives it (lower case, IDNA-encoded, IPv6 without
    brackets). Raises ValueError with a reason when the host is neither a valid address nor
    a plausible name: numeric forms that overflow, percent signs, empty labels. Numeric IPv4
    forms follow the WHATWG URL standard (and ``inet_aton``): a host whose last label is a
    number is an IPv4 address, whose parts may be decimal, octal (leading 0) or hex (0x).
    """
    if not host:
        raise ValueError("the URL has no host")
    if ":" in host:
        literal = host.replace("%25", "%")
        try:
            return ipaddress.IPv6Address(literal)
        except ValueError:
            raise ValueError(f"{quote(host)} is not a valid IPv6 address") from None
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if _NUMERIC_PART.match(labels[-1]):
        return _numeric_ipv4(host, labels)
    if not _HOSTNAME.match(name):
        raise ValueError(f"the host {quote(host)} has characters a host name cannot have")
    return None


def _numeric_ipv4(host: str, labels: list[str]) -> ipaddress.IPv4Address:
    if len(labels) > 4 or not all(_NUMERIC_PART.match(p) for p in labels):
        raise ValueError(f"the host {quote(host)} looks numeric but is not an IPv4 address")
    parts = [_number(p) for p in labels]
    # All parts but the last are single bytes; the last fills the remaining bytes.
    last_limit = 256 ** (5 - len(parts))
    if any(p > 255 for p in parts[:-1]) or parts[-1] >= last_limit:
        raise ValueError(f"the host {quote(host)} is a numeric address out of range")
    value = parts[-1]
    for i, part in enumerate(parts[:-1]):
        value += part << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        if not set(part) <= set("01234567"):
            raise ValueError(f"{quote(part, 40)} is not an octal number")
        return int(part, 8)
    return int(part)


def name_refusal(name: str) -> str | None:
    """Why a DNS name is refused before any lookup, or None to go ahead and resolve it.

    Single-label names ("metadata", "intranet") are completed through the machine's search
    domains, so they reach local hosts; reserved local suffixes never name a public host.
    """
    name = name.rstrip(".")
    if name in _DENIED_NAMES or name.endswith(_DENIED_SUFFIXES):
        return "a local-only name"
    if "." not in name:
        return "a single-label name (resolved through local search domains)"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The machine's resolver (``getaddrinfo``): every address of ``host``, IPv4 and IPv6."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """One checked hop: the URL as written, and the only addresses it may connect to."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]


class Gate:
    """What the browser may open: public hosts on open ports, plus explicitly allowed pairs.

    Args:
        allow_hosts: ``"host:port"`` pairs that skip the public-address and port checks.
        ports: ports open on public hosts.
        resolver: host name → addresses; called once per check.
    """

    def __init__(
        self, allow_hosts: Iterable[str], ports: Iterable[int], resolver: Resolver
    ) -> None:
        self.allow_hosts = frozenset(_allow_key(entry) for entry in allow_hosts)
        self.ports = frozenset(ports)
        self._resolve = resolver

    def check(self, url: str) -> Target:
        """Read ``url`` once and return the addresses it may reach, or raise a refusal."""
        if any(c.isspace() or _CONTROL.match(c) for c in url):
            raise Fault("refused: the URL contains whitespace or control characters; remove them")
        if "\\" in url:
            raise Fault("refused: the URL contains a backslash; write it with '/' only")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:  # idna errors are ValueErrors too
            raise Fault(f"refused: {quote(url)} is not a valid URL ({quote(exc)})") from None
        if parsed.scheme not in ("http", "https"):
            raise Fault(
                f"refused: only http and https URLs can be fetched, not {quote(parsed.scheme, 20)}"
            )
        if parsed.userinfo:
            raise Fault("refused: the URL carries credentials (user:password@); remove them")
        host = parsed.host
        try:
            literal = host_address(host)
        except ValueError as exc:
            raise Fault(f"refused: {exc}") from None
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        allowed = (str(literal) if literal else host.rstrip("."), port) in self.allow_hosts
        if not allowed and port not in self.ports:
            open_ports = ", ".join(str(p) for p in sorted(self.ports))
            raise Fault(f"refused: port {port} is closed to the browser (open ports: {open_ports})")
        if literal is not None:
            addresses: tuple[IPAddress, ...] = (literal,)
        else:
            why = name_refusal(host)
            if why and not allowed:
                raise Fault(f"refused: {_shown(host)} is {why}; only public hosts can be fetched")
            addresses = self._lookup(host, port)
        for address in addresses:
            why = None if allowed else refusal(address)
            if why is None:
                continue
            if literal is None:
                subject = f"{_shown(host)} resolves to {address},"
            elif str(literal) == host:
                subject = f"{host} is"
            else:  # a numeric form such as 2130706433: say what it denotes
                subject = f"{_shown(host)} is {address},"
            raise Fault(f"refused: {subject} {why}; only public hosts can be fetched")
        return Target(parsed, addresses)

    def _lookup(self, host: str, port: int) -> tuple[IPAddress, ...]:
        try:
            answers = self._resolve(host, port)
        except OSError as exc:
            raise Fault(
                f"could not resolve {_shown(host)} ({quote(exc)}); check the host name"
            ) from None
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                addresses.append(parse_address(answer))
            except ValueError:
                raise Fault(
                    f"refused: {_shown(host)} resolves to {quote(answer, 60)}, not an address"
                ) from None
        if not addresses:
            raise Fault(f"could not resolve {_shown(host)}: it has no addresses")
        return tuple(addresses)


def _shown(host: str) -> str:
    """A host that passed :func:`host_address` (no spaces, quotes or controls), for a message:
    as it is when short, else quoted and cut (a redirect can name a host of any length)."""
    return host if len(host) <= 100 else quote(host, 100)


def _allow_key(entry: str) -> tuple[str, int]:
    """``"host:port"`` as the gate compares it: a canonical address or a lower-case name."""
    try:
        url = httpx.URL(f"allow://{entry}")  # a scheme without a default port keeps ':80'
        literal = host_address(url.host)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UsageError(
            f"allow_hosts entry {entry!r} is not 'host:port' ({exc})", code="browser-allow-hosts"
        ) from None
    if url.port is None or url.path not in ("", "/") or url.userinfo:
        raise UsageError(
            f"allow_hosts entry {entry!r} must be 'host:port', e.g. '127.0.0.1:8123'",
            code="browser-allow-hosts",
        )
    return (str(literal) if literal else url.host.rstrip("."), url.port)
