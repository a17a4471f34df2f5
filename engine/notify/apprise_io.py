"""Talking to apprise: loading it once, keeping its log records (which print raw URLs) from leaking, asking whether it
can read a contact's URL, and showing a URL without its secrets.

Apart from the roster's file format (:mod:`.roster`) because delivery (:mod:`.delivery`) needs the same quiet
apprise and the same masking; nothing else in Carepath imports apprise.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import warnings
from types import ModuleType, TracebackType
from typing import Any

__all__ = ["AppriseLog", "apprise_module", "mask_raw", "plugin_for", "redact_url", "schemes", "scrub"]

# apprise's privacy mode leaves the path of plain webhooks alone, where tokens often live.
_WEBHOOK_SCHEMES = {"json", "jsons", "form", "forms", "xml", "xmls"}


class AppriseLog(logging.Filter):
    """While active, log records of apprise (and of urllib3 under it) from this thread are held back.

    apprise logs raw URLs (passwords and webhook tokens included) when it rejects or sends to one, and urllib3
    logs request paths; Carepath logs its own messages with redacted URLs instead. apprise's warnings are kept in
    ``messages`` (to report why a delivery failed). Records from other threads pass untouched.
    """

    LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.util.retry")

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self._thread:
            return True
        if record.name == "apprise" and record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())
        return False

    def __enter__(self) -> AppriseLog:
        self._thread = threading.get_ident()
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


@functools.cache
def apprise_module() -> ModuleType:
    """apprise, imported with its plugins loaded (once, on first use: it takes about half a second).

    Loading the e-mail plugin imports the standard library's deprecated ``imghdr`` (through apprise's PGP
    support); that one DeprecationWarning is silenced here, so it cannot break delivery where warnings are errors.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)
        import apprise
        from apprise.plugins import N_MGR

        with AppriseLog():
            N_MGR.load_modules()
    return apprise


def plugin_for(url: str) -> Any:
    """apprise's plugin object for ``url``, or None when apprise cannot read it (without logging the URL)."""
    apprise = apprise_module()
    with AppriseLog():
        try:
            return apprise.Apprise.instantiate(url)
        except Exception:  # a plugin's parser can raise on odd input; that means "not usable"
            return None


def schemes() -> list[str]:
    return sorted(apprise_module().plugins.N_MGR.schemas())


def redact_url(url: str) -> str:
    """``url`` safe to show: apprise's privacy form without the query, webhook path segments masked."""
    plugin = plugin_for(url)
    if plugin is None:
        return mask_raw(url)
    base = str(plugin.url(privacy=True)).partition("?")[0]
    scheme, sep, rest = base.partition("://")
    if scheme.lower() in _WEBHOOK_SCHEMES:
        host, slash, path = rest.partition("/")
        rest = host + slash + "/".join(_mask(segment) for segment in path.split("/"))
    return scheme + sep + rest


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. an apprise error) with every secret-looking piece of ``url`` masked."""
    pieces = {url, url.partition("?")[0]}
    rest = url.partition("://")[2]
    userinfo, at, hostpart = rest.rpartition("@") if "@" in rest.split("/", 1)[0] else ("", "", rest)
    if at:
        pieces.update(userinfo.split(":"))
    path, _, query = hostpart.partition("?")
    pieces.update(segment for segment in path.split("/")[1:] if len(segment) > 4)
    for pair in query.split("&"):
        pieces.add(pair.partition("=")[2])
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, "****")
    return text


def _mask(segment: str) -> str:
    return segment if len(segment) <= 4 else f"{segment[0]}...{segment[-1]}"


def mask_raw(url: str) -> str:
    """Mask the password and query of a URL apprise cannot read (it may still hold a real secret)."""
    base = url.partition("?")[0] + ("?..." if "?" in url else "")
    return re.sub(r"^([^:/]*://[^:@/]*:)[^@/]*@", r"\1****@", base)
