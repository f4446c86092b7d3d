"""Where web fetches may go: the SSRF address policy, the canonical URL form and a crawl's scope.

Owns the address policy for web sources: only http(s) URLs without a user name or password,
whose host resolves to public addresses only. `check_url` applies it to a URL before any
request; `SafeTransport` applies it again at connect time, to the very addresses the
socket connects to, so a name that resolves to a public address when checked and to a private
one a moment later (DNS rebinding) is still refused. `ALLOW_PRIVATE_URLS` relaxes the policy:
`true` allows every address, a comma list of networks (e.g. `127.0.0.1/32`) allows only those.
Cloud metadata host names are refused whatever that setting says. `CrawlScope` keeps a crawl on
the start page's site and folder and refuses crawl-trap links (too long, too many query variants).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import typing
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from bot.rag.errors import SourceError
from bot.rag.ingest.http_deadline import DeadlineBackend
from bot.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})
_METADATA_ADDRESSES = frozenset(map(ipaddress.ip_address, ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")
MAX_URL_LENGTH = 2000
MAX_HOST_LENGTH = 253
MAX_QUERY_VARIANTS = 10  # distinct query strings a crawl follows per path
SKIP_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".ico", ".css", ".js", ".json", ".xml", ".zip",
                 ".gz", ".tgz", ".tar", ".mp3", ".mp4", ".webm", ".avi", ".woff", ".woff2", ".ttf", ".exe", ".dmg")
_TRUE = {"true", "1", "yes", "on", "all", "*"}
_FALSE = {"false", "0", "no", "off", "none", ""}


class UnsafeURLError(SourceError):
    """A URL that must not be fetched: wrong scheme, credentials, or a non-public address.

    `detail` says why ("it points to a private address (10.0.0.5). ..."); `reason` is the message without the URL;
    `at_connect`: refused by `SafeTransport` when connecting, i.e. the host name now resolves to a refused address.
    """

    def __init__(self, url: str, detail: str, *, at_connect: bool = False) -> None:
        self.url, self.detail, self.reason, self.at_connect = url, detail, f"refused — {detail}", at_connect
        super().__init__(f"{url}: {self.reason}.")


def display_url(url: str, limit: int = 200) -> str:
    """`url` fit for a message: any user name or password removed, cut to `limit` characters."""
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    except ValueError:
        pass
    return url if len(url) <= limit else url[: limit - 1] + "…"


def normalise_url(url: str, base: str | None = None) -> str | None:
    """Absolute http(s) URL without fragment, default port, duplicate slashes or dot segments; None if not one."""
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if "@" in parts.netloc:  # kept, so that check_url refuses it
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    segments: list[str] = []
    raw = (parts.path or "/").split("/")[1:]
    for i, segment in enumerate(raw):
        if segment == "..":
            segments = segments[:-1]
        elif segment != "." and (segment or i == len(raw) - 1):
            segments.append(segment)
    if raw and raw[-1] in (".", ".."):
        segments.append("")
    return urlunsplit((scheme, netloc, "/" + "/".join(segments), parts.query, ""))


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, without any user name or password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


class CrawlScope:
    """Where a crawl may go: the start page's site and folder, within crawl-trap limits on the links."""

    def __init__(self, start: str, max_depth: int) -> None:
        self.start, self.max_depth = start, max_depth
        self.roots: list[tuple[str, str]] = []  # (origin, folder path)
        self._queries: dict[str, set[str]] = {}
        self.add(start)

    def add(self, url: str) -> None:
        """Also take in the folder of `url` (where the start page redirected to)."""
        path = urlsplit(url).path or "/"
        last = path.rsplit("/", 1)[-1]
        self.roots.append((origin(url), path + "/" if last and "." not in last else path[: path.rfind("/") + 1]))

    def contains(self, url: str) -> bool:
        """On a root's origin and under its folder (or the folder itself without the slash)."""
        path = urlsplit(url).path or "/"
        return any(origin(url) == o and (path.startswith(p) or path == p.rstrip("/")) for o, p in self.roots)

    def refusal(self, link: str, depth: int) -> str | None:
        """Why a crawl does not follow `link` found `depth` links from the start, or None (it does)."""
        parts, path_key = urlsplit(link), link.split("?", 1)[0]
        queries = self._queries.setdefault(path_key, set())
        if not self.contains(link):
            return "off-site link" if origin(link) != origin(self.start) else f"outside {self.roots[0][1]}"
        if len(link) > MAX_URL_LENGTH:
            return f"URL longer than {MAX_URL_LENGTH:,} characters"
        if parts.path.lower().endswith(SKIP_SUFFIXES):
            return "not a document (file type)"
        if depth > self.max_depth:
            return f"deeper than max depth {self.max_depth}"
        if parts.query not in queries and len(queries) >= MAX_QUERY_VARIANTS:
            return f"more than {MAX_QUERY_VARIANTS} query-string variants of {path_key}"
        queries.add(parts.query)
        return None


def allowed_networks(settings: Settings) -> bool | list[IPNetwork]:
    """True (all addresses allowed), False (public only) or the networks allowed besides public ones."""
    value = settings.allow_private_urls.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    networks: list[IPNetwork] = []
    for entry in value.replace(";", ",").split(","):
        if not entry.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise SourceError(
                f"ALLOW_PRIVATE_URLS: {entry.strip()!r} is not an IP network "
                "(expected true, false or a list such as 127.0.0.1/32)."
            ) from None
    return networks


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def non_public_kind(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address ("a private address", ...), or None when it is public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return non_public_kind(embedded)
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (ip.is_unspecified, "an unspecified address"), (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"), (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a shared (carrier-grade NAT) address"),
        (ip.is_private, "a private address"), (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a non-public address"),
    )
    return next((kind for failed, kind in checks if failed), None)


def check_address(ip: IPAddress, settings: Settings) -> str | None:
    """The refusal reason for connecting to `ip` under the settings, or None when allowed."""
    kind = non_public_kind(ip)
    if kind is None:
        return None
    if ip in _METADATA_ADDRESSES or _embedded_ipv4(ip) in _METADATA_ADDRESSES:
        return f"it points to a cloud metadata address ({ip}), never a web source"  # whatever is allowed
    allowed = allowed_networks(settings)
    if allowed is True:
        return None
    if allowed:
        candidates = [ip] + [e for e in (_embedded_ipv4(ip),) if e is not None]
        if any(c.version == net.version and c in net for c in candidates for net in allowed):
            return None
    return f"it points to {kind} ({ip}). Web sources must be public"


def resolve_checked(host: str, port: int, settings: Settings, url: str) -> list[str]:
    """Every address `host` resolves to, each checked; raises UnsafeURLError if any is refused."""
    name = host.strip("[]").rstrip(".").lower()
    url = display_url(url)
    if len(name) > MAX_HOST_LENGTH:  # DNS names have at most 253 characters
        raise SourceError(f"{url}: not a valid URL (the host name {_short_host(name)} has {len(name):,} "
                          f"characters, more than {MAX_HOST_LENGTH}).")
    if name in METADATA_HOSTNAMES:
        raise UnsafeURLError(url, f"{name} is a cloud metadata service, never a web source")
    try:
        addresses = [ipaddress.ip_address(name)]
    except ValueError:
        try:  # legacy IPv4 forms (127.1, 0x7f000001) parse without DNS; getaddrinfo would accept them too
            addresses = [ipaddress.IPv4Address(socket.inet_aton(name))] if _LEGACY_IPV4.fullmatch(name) else []
        except OSError:
            addresses = []
    if not addresses:
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise SourceError(f"{url}: the host name {_short_host(name)} could not be resolved ({exc}).") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise SourceError(f"{url}: the host name {_short_host(name)} has no addresses.")
    for ip in addresses:
        if (reason := check_address(ip, settings)) is not None:
            raise UnsafeURLError(url, reason)
    return list(dict.fromkeys(str(ip) for ip in addresses))


def _short_host(name: str, limit: int = 60) -> str:
    """A host name fit for a message: its start and its end (the domain) around an ellipsis."""
    return name if len(name) <= limit else f"{name[: limit // 2 - 1]}…{name[-(limit // 2):]}"


def check_url(url: str, settings: Settings) -> None:
    """Raise UnsafeURLError unless `url` is http(s), has no credentials and every address of its host is allowed."""
    shown = display_url(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise SourceError(f"{shown}: not a valid URL.") from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        scheme = f"{parts.scheme}: URLs" if parts.scheme else "URLs without http:// or https://"
        raise UnsafeURLError(shown, f"{scheme} cannot be web sources; only http:// and https:// can")
    if "@" in parts.netloc:
        raise UnsafeURLError(shown, "URLs with a user name or password are not accepted")
    if not parts.hostname:
        raise SourceError(f"{shown}: not a valid URL (no host name).")
    resolve_checked(parts.hostname, port or _DEFAULT_PORTS[parts.scheme.lower()], settings, shown)


def checked_url(url: str, settings: Settings) -> str:
    """`url` in canonical form, after `check_url` let it through."""
    check_url(url, settings)
    if (canonical := normalise_url(url)) is None:
        raise SourceError(f"{display_url(url)}: not a valid URL.")
    return canonical


class _GuardedBackend(DeadlineBackend):
    """Connects only to addresses that pass the policy, resolved once and checked right here;
    every connection ends by the current request deadline (http_deadline)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve_checked(host, port, self._settings, f"{host}:{port}")
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error


class SafeTransport(httpx.HTTPTransport):
    """An httpx transport (direct connections, no proxy) whose every connection is checked by the policy.

    TLS still verifies the certificate and sends SNI for the URL's host name, not the address.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(trust_env=False)
        # httpx offers no public hook for the network backend; replace its connection pool with
        # an equivalent one that connects through the guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
            network_backend=_GuardedBackend(settings),
        )
