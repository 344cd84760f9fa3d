"""What the installer can reach: pip's own settings, index reachability, measured download sizes.

Nothing here installs anything and nothing imports Qt: the dialog runs these functions on a
worker thread before the user clicks Install.

* :func:`read_pip_settings` asks QGIS's interpreter for pip's configuration (``pip config
  list``: index-url, extra-index-url, proxy, cert, trusted-host) and applies the ``PIP_*``
  environment variables on top, as pip does. The same proxy and certificates are used for
  every request made here.
* :func:`probe` says whether an index answers at all, with the reason when it does not
  (refused, timed out, name not resolved, certificate rejected, proxy refused).
* :class:`~.installer_sizes.Resolver` resolves the requirement set over the indexes' simple
  API and the wheels' metadata files and adds up the file sizes the index states (no wheel
  is downloaded).
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess  # nosec B404 - runs QGIS's own interpreter with fixed arguments
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PYPI_SIMPLE = "https://pypi.org/simple"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
_CONFIG_LINE = re.compile(r"^(?:global|install|:env:)\.([a-z-]+)=(.*)$")


@dataclass(frozen=True)
class PipSettings:
    """The pip options that decide where packages come from.

    Attributes:
        index_url: The main index (pip's default: PyPI).
        extra_index_urls: Further indexes pip also reads.
        proxy: ``[user:passwd@]proxy.server:port`` ("" = the ``*_proxy`` environment).
        cert: CA bundle file ("" = the system's).
        trusted_hosts: Hosts whose certificates are not checked.
        source: Where ``index_url`` comes from, for the user ("pip's default", a variable
            name, "pip configuration").
    """

    index_url: str = PYPI_SIMPLE
    extra_index_urls: tuple[str, ...] = ()
    proxy: str = ""
    cert: str = ""
    trusted_hosts: tuple[str, ...] = ()
    source: str = "pip's default"


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_pip_settings(config_list: str, environ: Mapping[str, str]) -> PipSettings:
    """Pip's effective index settings from ``pip config list`` output and the environment.

    Args:
        config_list: Output of ``python -m pip config list`` (``global.index-url='...'``).
        environ: Environment variables (``PIP_INDEX_URL`` etc. override the files, as in pip).

    Returns:
        The settings.
    """
    values: dict[str, str] = {}
    for line in config_list.splitlines():
        match = _CONFIG_LINE.match(line.strip())
        if match:
            values[match.group(1)] = _unquote(match.group(2))
    source = "pip configuration" if "index-url" in values else "pip's default"
    for key in ("index-url", "extra-index-url", "proxy", "cert", "trusted-host"):
        env = environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            values[key] = env
            if key == "index-url":
                source = "PIP_INDEX_URL"
    return PipSettings(
        index_url=(values.get("index-url") or PYPI_SIMPLE).rstrip("/"),
        extra_index_urls=tuple(u.rstrip("/") for u in values.get("extra-index-url", "").split()),
        proxy=values.get("proxy", ""),
        cert=values.get("cert", ""),
        trusted_hosts=tuple(values.get("trusted-host", "").split()),
        source=source,
    )


def read_pip_settings(python: str, timeout_s: float = 30.0) -> PipSettings:
    """Ask ``python``'s pip for its configuration (files and ``PIP_*`` variables).

    Args:
        python: QGIS's interpreter.
        timeout_s: Give up after this many seconds (then pip's defaults are assumed).
    """
    try:
        proc = subprocess.run(  # nosec B603 - fixed arguments, no shell
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        listed = proc.stdout if proc.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        listed = ""
    return parse_pip_settings(listed, os.environ)


def options_override(settings: PipSettings, options: Sequence[str]) -> PipSettings:
    """``settings`` with the index options of a pip command line applied on top."""
    index, extras, args = settings.index_url, list(settings.extra_index_urls), list(options)
    source = settings.source
    for i, arg in enumerate(args[:-1]):
        if arg in ("--index-url", "-i"):
            index, source = args[i + 1].rstrip("/"), "the install command"
        elif arg == "--extra-index-url":
            extras.append(args[i + 1].rstrip("/"))
    return PipSettings(index, tuple(dict.fromkeys(extras)), settings.proxy, settings.cert,
                       settings.trusted_hosts, source)


# ---------------------------------------------------------------------- HTTP
class Http:
    """GET/HEAD with pip's proxy and certificate settings.

    Args:
        settings: Pip's settings.
        timeout_s: Per request.
    """

    def __init__(self, settings: PipSettings, timeout_s: float = 8.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        handlers: list[Any] = []
        if settings.proxy:
            proxy = settings.proxy if "://" in settings.proxy else "http://" + settings.proxy
            handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
        context = ssl.create_default_context(cafile=settings.cert or None)
        handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        self._insecure = urllib.request.build_opener(
            *handlers[:-1], urllib.request.HTTPSHandler(context=insecure)
        )

    def open(self, url: str, method: str = "GET", accept: str = "*/*") -> Any:
        """The response (caller closes it). Raises ``OSError`` subclasses on failure."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"only http(s) indexes are measured, got {url!r}")
        request = urllib.request.Request(
            url, method=method, headers={"Accept": accept, "User-Agent": "rs2sam-qgis"}
        )
        return self.opener(url).open(request, timeout=self.timeout_s)  # nosec B310 - http(s)

    def opener(self, url: str) -> Any:
        """The opener for ``url`` (certificate checks off only for pip's trusted hosts)."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"only http(s) indexes are measured, got {url!r}")
        host = urlsplit(url).hostname or ""
        return self._insecure if host in self.settings.trusted_hosts else self._opener

    def read(self, url: str, accept: str = "*/*", limit: int = 64 << 20) -> tuple[bytes, str, str]:
        """``(body, content type, final url)`` of a GET."""
        with self.open(url, accept=accept) as response:
            body = response.read(limit)
            return body, response.headers.get("Content-Type", ""), response.geturl()


def failure_reason(exc: BaseException) -> str:
    """A short reason for a failed request ("connection refused", "timed out", ...)."""
    reason: Any = getattr(exc, "reason", exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    text = str(reason).lower()
    for key, label in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("certificate", "certificate rejected"),
        ("name or service", "name not resolved"),
        ("nodename", "name not resolved"),
        ("getaddrinfo", "name not resolved"),
        ("407", "proxy refused"),
        ("unreachable", "network unreachable"),
    ):
        if key in text:
            return label
    return str(reason) or type(exc).__name__


@dataclass(frozen=True)
class Probe:
    """Whether an index answered.

    Attributes:
        url: The index.
        reachable: True when any HTTP answer came back.
        reason: Why not ("" when reachable).
    """

    url: str
    reachable: bool
    reason: str = ""


def probe(url: str, http: Http, project: str = "torch") -> Probe:
    """GET ``<url>/<project>/`` (a small page; the index root can be huge) and report."""
    try:
        with http.open(f"{url.rstrip('/')}/{project}/", accept=JSON_ACCEPT) as response:
            response.read(1024)
    except urllib.error.HTTPError:
        return Probe(url, True)  # it answered (404: the index exists, the project not)
    except (OSError, ValueError) as exc:
        return Probe(url, False, failure_reason(exc))
    return Probe(url, True)
