"""Alerts by email: `smtp://host:port/?to=a@b.example&to=c@d.example` (STARTTLS when the server
offers it; `starttls=require` to insist) or `smtps://` (TLS from the start). Credentials come
from FLAN_SMTP_USER / FLAN_SMTP_PASSWORD and never appear in messages. They are sent only over
TLS: to log in to a server without STARTTLS, the URL must say `smtp+insecure://`."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from flanscan._errors import UsageError
from flanscan._notify._message import Alert, clean
from flanscan._notify._retry import PermanentFailure, TransientFailure
from flanscan._secrets import mask_url

SCHEMES = ("smtp", "smtps", "smtp+insecure")


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    require_starttls: bool
    allow_plain_login: bool  # smtp+insecure://: credentials may cross the network in clear
    recipients: tuple[str, ...]
    sender: str
    user: str | None


def valid_url(url: str) -> None:
    """UsageError for a URL Python cannot take apart (a port out of range or not a number, a
    bad IPv6 literal): one line, the URL masked, instead of a ValueError later."""
    try:
        parts = urlsplit(url)
        _ = parts.port, parts.hostname
    except ValueError as exc:
        raise UsageError(f"--notify {mask_url(url)}: not a usable URL ({exc})") from None


def parse_smtp_url(url: str) -> SmtpTarget:
    """Read an smtp:// or smtps:// alert URL; UsageError naming what is missing."""
    valid_url(url)
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise UsageError(f"--notify {redact(url)}: expected smtp://HOST[:PORT]/?to=ADDRESS")
    if parts.password:
        raise UsageError(
            f"--notify {redact(url)}: put the SMTP password in FLAN_SMTP_PASSWORD, not in the URL"
        )
    query = parse_qs(parts.query)
    recipients = tuple(
        addr.strip() for value in query.get("to", []) for addr in value.split(",") if addr.strip()
    )
    for addr in (*recipients, *query.get("from", [])):
        if any(c in addr for c in "\r\n\0") or any(ord(c) < 32 for c in addr):
            raise UsageError(
                f"--notify {redact(url)}: an address holds a line break or control character; "
                "give plain addresses"
            )
    if not recipients:
        raise UsageError(f"--notify {redact(url)}: add the recipient, e.g. ?to=security@...")
    implicit = parts.scheme == "smtps"
    sender = (query.get("from") or [os.environ.get("FLAN_SMTP_FROM", "")])[0]
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 25),
        implicit_tls=implicit,
        allow_plain_login=parts.scheme == "smtp+insecure",
        require_starttls=(query.get("starttls") or [""])[0] == "require",
        recipients=recipients,
        sender=sender or f"flanscan@{socket.getfqdn()}",
        user=unquote(parts.username) if parts.username else os.environ.get("FLAN_SMTP_USER"),
    )


def redact(url: str) -> str:
    """Scheme, host and port only: recipients and user names stay out of logs."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def email_message(alert: Alert, target: SmtpTarget) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = clean(alert.title, 200)
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.recipients)
    msg.set_content(alert.text())
    return msg


def send_email(url: str, alert: Alert, timeout: float) -> None:
    """Send one email; raise Transient/PermanentFailure by what a retry could change."""
    target = parse_smtp_url(url)
    password = os.environ.get("FLAN_SMTP_PASSWORD")
    context = ssl.create_default_context()
    try:
        smtp: smtplib.SMTP
        if target.implicit_tls:
            smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            encrypted = target.implicit_tls
            if not target.implicit_tls:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                    encrypted = True
                elif target.require_starttls:
                    raise PermanentFailure("server does not offer STARTTLS (starttls=require)")
            if target.user and password:
                if not encrypted and not target.allow_plain_login:
                    raise PermanentFailure(
                        "server does not offer STARTTLS: the SMTP password is not sent in clear "
                        "(use smtps://, or smtp+insecure:// to allow it)"
                    )
                smtp.login(target.user, password)
            smtp.send_message(email_message(alert, target))
    except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused) as exc:
        raise PermanentFailure(f"{type(exc).__name__}: the server refused the message") from exc
    except smtplib.SMTPResponseException as exc:
        text = f"SMTP {exc.smtp_code}"
        if 400 <= exc.smtp_code < 500:
            raise TransientFailure(text) from exc
        raise PermanentFailure(text) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientFailure(f"{type(exc).__name__}: {clean(str(exc), 120)}") from exc
