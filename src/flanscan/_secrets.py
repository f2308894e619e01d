"""Masking secrets in anything flan prints or writes: URL passwords and user names of object
stores, query parameters that carry credentials, Slack webhook tokens. The one place that
knows what a secret in a URL looks like; messages pass through `mask_text`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"

# Query parameters whose value is a credential (compared lower-case, "-" read as "_").
SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "sslpassword",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "authorization",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
        "x_amz_signature",
        "x_amz_credential",
        "x_amz_security_token",
        "x_goog_signature",
        "x_goog_credential",
    }
)
# Schemes whose user name is itself a credential (an access key id).
_KEY_USER_SCHEMES = frozenset({"s3", "gs"})
_SLACK_HOSTS = ("hooks.slack.com",)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s'\"<>]+")
_BARE_SLACK = re.compile(r"(?<![/\w.])(hooks\.slack\.com/services/)[^\s'\"<>]+")


def _secret_param(name: str) -> bool:
    return name.strip().lower().replace("-", "_") in SECRET_PARAMS


def mask_url(url: str) -> str:
    """`url` with its password (for s3:// and gs:// the whole user part), credential query
    values and a Slack webhook's token path replaced by ***; unparsable URLs keep only their
    scheme."""
    try:
        parts = urlsplit(url)
        password = parts.password
        username = parts.username
        host = parts.hostname or ""
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{MASK}" if scheme else MASK
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    if "@" in netloc:
        hostport = netloc.rsplit("@", 1)[1]
        if scheme in _KEY_USER_SCHEMES or scheme.startswith("slack"):
            netloc = f"{MASK}@{hostport}"
        elif password is not None:
            netloc = f"{username or ''}:{MASK}@{hostport}"
    path = parts.path
    if host in _SLACK_HOSTS or scheme.startswith("slack+"):
        path = "/" + MASK if path not in ("", "/") else path
        if host in _SLACK_HOSTS and parts.path.startswith("/services/"):
            path = "/services/" + MASK
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_param(k) for k, _ in pairs):
            query = "&".join(
                f"{quote(k, safe='')}={MASK if _secret_param(k) else quote(v, safe='@,')}"
                for k, v in pairs
            )
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def mask_text(text: str) -> str:
    """Free text (an error message, a note) with every URL in it passed through `mask_url`, and
    a scheme-less Slack webhook address cut to its host."""
    text = _URL.sub(lambda m: mask_url(m.group(0)), text)
    return _BARE_SLACK.sub(lambda m: m.group(1) + MASK, text)
