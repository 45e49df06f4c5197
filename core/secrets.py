"""Credentials a URL can carry, masked before the URL is printed or stored.

A URL holds secrets in two places: the userinfo (`postgresql://user:PASSWORD@host/db`,
`https://user:TOKEN@host/`) and the query (`?password=…`, `?sslpassword=…`,
`?access_token=…`, a signed URL's `sig=` or `X-Amz-Signature=…`). SQLAlchemy's
`render_as_string(hide_password=True)` masks the first only, so a SQL URL given with
`?password=` was written in clear to stderr, `runs/*.json` and Prefect's database. Every
URL greenlight shows goes through `mask_url` (or `mask_text` for a line that may hold one,
such as a driver's error): the value becomes `***`, the name stays, so a person still sees
which parameter was given.

Standard library only: core imports nothing of ours, and nothing heavy.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
# Query parameters whose value is a secret, compared lower-case with `-` and `_` removed.
SECRET_PARAMS = frozenset({
    "password", "passwd", "pwd", "pass", "sslpassword", "sslkey", "token", "accesstoken",
    "refreshtoken", "idtoken", "authtoken", "sessiontoken", "securitytoken", "secret",
    "clientsecret", "apikey", "key", "accesskey", "secretkey", "privatekey", "sig",
    "signature", "xamzsignature", "xamzcredential", "xamzsecuritytoken", "xgoogsignature",
    "xgoogcredential", "auth", "authorization", "credential", "credentials", "jwt",
    "awssecretaccesskey", "awssessiontoken", "sharedaccesskey",
})
# Any name holding one of these is a secret too (`db_password`, `my_api_token`).
SECRET_PARTS = ("password", "passwd", "secret", "token", "apikey", "signature", "credential",
                "privatekey")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter named `name` carries a credential."""
    key = re.sub(r"[-_.]", "", name.lower())
    return key in SECRET_PARAMS or any(part in key for part in SECRET_PARTS)


def mask_query(query: str) -> str:
    """A query string with the value of every secret parameter replaced by `***`; the
    other parameters, their order and their encoding are left as they were."""
    if not query:
        return query
    out = []
    for piece in query.split("&"):
        name, eq, _value = piece.partition("=")
        decoded = parse_qsl(name + "=x", keep_blank_values=True)
        shown_name = decoded[0][0] if decoded else name
        out.append(f"{name}={MASK}" if eq and is_secret_param(shown_name) else piece)
    return "&".join(out)


def mask_url(url: str) -> str:
    """`url` with the password of its userinfo and every secret query parameter masked.

    Text that is not a URL comes back as it is; a URL that does not parse (a bad port)
    comes back with everything between `://` and the host masked, never in clear."""
    text = str(url)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            name, colon, _password = user.partition(":")
            netloc = f"{name}:{MASK}@{host}" if colon else f"{user}@{host}"
        query = mask_query(parts.query)
        # Replace in place rather than rebuild: urlunsplit drops an empty authority, so
        # `sqlite:////abs/mlflow.db` would come back as `sqlite://abs/mlflow.db`.
        out = text.replace(parts.netloc, netloc, 1) if netloc != parts.netloc else text
        if query != parts.query:
            head, sep, tail = out.partition("?")
            out = head + sep + tail.replace(parts.query, query, 1)
        return out
    except ValueError:
        scheme, _, rest = text.partition("://")
        host = rest.rpartition("@")[2] if "@" in rest else rest
        return f"{scheme}://{MASK}@{quote(host.split('?')[0], safe=':/[]')}"


def mask_text(text: str) -> str:
    """Every URL inside a line of text masked (`mask_url`): for errors and messages that
    may echo a connection string."""
    return _URL.sub(lambda m: mask_url(m.group(0)), str(text))
