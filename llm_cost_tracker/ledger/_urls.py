"""Database URLs: which dialect a URL names, SQLite paths, and URLs fit for logs."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from .._errors import ConfigurationError

_SCHEMES = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "postgresql+psycopg": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
}


def dialect_name_for_url(url: str) -> str:
    """Return ``sqlite``, ``postgres`` or ``mysql`` for a database URL; raise ConfigurationError otherwise."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    try:
        return _SCHEMES[scheme]
    except KeyError:
        raise ConfigurationError(
            f"unsupported database URL {redact_url(url)!r}: expected sqlite:///path.db, "
            "postgresql://user@host/db or mysql://user@host/db"
        ) from None


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``; ``sqlite://`` -> ``:memory:``."""
    if not url.lower().startswith("sqlite:"):
        raise ConfigurationError(f"not a SQLite URL: {redact_url(url)!r}")
    rest = url[len("sqlite:") :]
    if rest in ("", "//", "///:memory:", "//:memory:"):
        return ":memory:"
    if not rest.startswith("///"):
        raise ConfigurationError(
            f"SQLite URLs look like sqlite:///relative.db or sqlite:////absolute.db, got {url!r}"
        )
    return unquote(rest[3:].split("?", 1)[0])


def redact_url(url: str) -> str:
    """Return ``url`` without its password and query string, fit for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return f"{parts.scheme}://{netloc}{parts.path}"
