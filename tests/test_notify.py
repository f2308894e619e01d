"""Alerts to real servers on loopback: an HTTP receiver (JSON and Slack webhooks) and an SMTP
server (aiosmtpd), including deliveries that fail and are retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flanscan._errors import UsageError
from flanscan._history import diff_reports
from flanscan._model import ChangeSummary, FindingStatus, Report, Severity
from flanscan._notify import RetryPolicy, build_alert, check_notify_urls, send_alerts
from flanscan._notify._http import is_slack
from testlab.synthetic import Port, Vuln, make_report

FAST = RetryPolicy(attempts=3, delays=(0.01, 0.02), timeout=5)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOSTILE = "nginx <!channel> & *bold*\n\x1b[31m"


class Receiver:
    """Records every POST; `/flaky/...` fails twice then succeeds, `/down` always fails,
    `/bad` answers 400."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                if self.path.startswith("/down") or (
                    self.path.startswith("/flaky") and outer.hits[self.path] <= 2
                ):
                    self.send_response(503)
                elif self.path.startswith("/bad"):
                    self.send_response(400)
                else:
                    outer.requests.append((self.path, json.loads(body)))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def runs() -> tuple[Report, ChangeSummary]:
    """A previous run and a new one with: 3 new critical/high findings on 3 hosts (one CVE
    on two hosts), a new medium one, a suppressed new one, and one old finding now in KEV."""
    old_ports = [
        Port("198.18.0.10", 22, "tcp", "ssh", "OpenSSH", "9.2p1", (Vuln("CVE-2023-0001", 5.0),))
    ]
    kev = Vuln("CVE-2023-0001", 5.0, kev="2026-03-03")
    crit, medium = Vuln("CVE-2024-1111", 9.8), Vuln("CVE-2024-2222", 4.0)
    suppressed = Vuln("CVE-2024-3333", 9.0, status=FindingStatus.SUPPRESSED)
    new_ports = [
        Port("198.18.0.10", 22, "tcp", "ssh", "OpenSSH", "9.2p1", (kev,)),
        Port("198.18.0.11", 80, "tcp", "http", HOSTILE, "1.0", (crit, medium)),
        Port("198.18.0.12", 80, "tcp", "http", HOSTILE, "1.0", (crit,)),
        Port("198.18.0.13", 443, "tcp", "https", "Apache httpd", "2.4.49",
             (Vuln("CVE-2021-41773", 7.5), suppressed)),
    ]  # fmt: skip
    old = make_report(old_ports, start=T0, run_id="old")
    new = make_report(new_ports, start=T0 + timedelta(days=1), run_id="new")
    return new, diff_reports(old, new)


def test_alert_content_one_entry_per_vulnerability() -> None:
    report, changes = runs()
    alert = build_alert(report, changes, Severity.HIGH)
    assert alert is not None
    by_id = {e.vuln_id: e for e in alert.entries}
    # medium CVE-2024-2222 is below the threshold, suppressed CVE-2024-3333 is accepted risk
    assert sorted(by_id) == ["CVE-2021-41773", "CVE-2023-0001", "CVE-2024-1111"]
    assert by_id["CVE-2024-1111"].locations == ("198.18.0.11:80/tcp", "198.18.0.12:80/tcp")
    assert by_id["CVE-2023-0001"].why == "now in KEV"  # medium, but newly in KEV
    assert alert.entries[0].vuln_id == "CVE-2023-0001"  # KEV first
    assert by_id["CVE-2024-1111"].link == "https://nvd.nist.gov/vuln/detail/CVE-2024-1111"
    assert "\x1b" not in alert.text() and "\n\x1b" not in alert.title
    low = build_alert(report, changes, Severity.MEDIUM)
    assert low is not None and "CVE-2024-2222" in {e.vuln_id for e in low.entries}


def test_no_alert_when_nothing_new_is_severe(receiver: Receiver) -> None:
    report = make_report(
        [Port("198.18.0.10", 22, "tcp", "ssh", "OpenSSH", "9.2p1", (Vuln("CVE-2023-0001", 5.0),))]
    )
    changes = diff_reports(make_report([], extra_hosts=["198.18.0.10"]), report)
    assert [i.kind.value for i in changes.items] == ["new-finding", "new-port"]
    assert send_alerts([receiver.base + "/hook"], report, changes, Severity.HIGH, retry=FAST) == []
    assert receiver.requests == []


def test_json_webhook_one_message_per_run(receiver: Receiver) -> None:
    report, changes = runs()
    failures = send_alerts([receiver.base + "/hook"], report, changes, Severity.HIGH, retry=FAST)
    assert failures == []
    assert len(receiver.requests) == 1
    path, body = receiver.requests[0]
    assert path == "/hook" and body["source"] == "flanscan" and body["run_id"] == "new"
    assert {f["id"] for f in body["findings"]} == {
        "CVE-2021-41773",
        "CVE-2023-0001",
        "CVE-2024-1111",
    }
    assert body["counts"] == {"critical": 2, "high": 1, "medium": 1}
    assert body["new_kev"] == 1
    hostile = next(f for f in body["findings"] if f["id"] == "CVE-2024-1111")["service"]
    assert "<!channel>" in hostile and "\x1b" not in hostile  # JSON carries it, cleaned


def test_slack_webhook_escapes_host_text(receiver: Receiver) -> None:
    report, changes = runs()
    url = "slack+" + receiver.base + "/services/T000/B000/SECRET"
    assert send_alerts([url], report, changes, Severity.HIGH, retry=FAST) == []
    ((path, body),) = receiver.requests
    assert path == "/services/T000/B000/SECRET"
    text = json.dumps(body["blocks"])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://nvd.nist.gov/vuln/detail/CVE-2024-1111|CVE-2024-1111>" in text
    assert is_slack("https://hooks.slack.com/services/T/B/X") and not is_slack(receiver.base)


def test_flaky_receiver_is_retried_until_it_succeeds(receiver: Receiver) -> None:
    report, changes = runs()
    slept: list[float] = []
    failures = send_alerts(
        [receiver.base + "/flaky"], report, changes, retry=FAST, sleep=slept.append
    )
    assert failures == []
    assert receiver.hits["/flaky"] == 3 and len(receiver.requests) == 1
    assert slept == [0.01, 0.02]


def test_failures_are_reported_without_secrets(receiver: Receiver) -> None:
    report, changes = runs()
    dead = f"http://127.0.0.1:{_closed_port()}/x"
    urls = [receiver.base + "/down/SECRET", "slack+" + receiver.base + "/bad/SECRET2", dead,
            receiver.base + "/ok"]  # fmt: skip
    failures = send_alerts(urls, report, changes, retry=FAST)
    assert len(failures) == 3
    down, bad, refused = failures
    assert down.attempts == 3 and "HTTP 503" in down.error
    assert bad.attempts == 1 and "HTTP 400" in bad.error  # not retried: it would not help
    assert refused.attempts == 3 and "Connect" in refused.error
    assert all("SECRET" not in str(f) for f in failures)
    assert str(down).startswith(f"webhook {receiver.base}: HTTP 503")
    assert len(receiver.requests) == 1  # the good one still got its message


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, _Mailbox]]:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = _Mailbox()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if isinstance(data, LoginPassword):
            box.logins.append((data.login.decode(), data.password.decode()))
            ok = data.password == b"pw-9f8e"
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    controller = aiosmtpd.Controller(
        box, hostname="127.0.0.1", port=_closed_port(), authenticator=authenticator,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        yield f"127.0.0.1:{controller.port}", box
    finally:
        controller.stop()


def test_email_with_credentials_from_environment(
    smtp_server: tuple[str, _Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, box = smtp_server
    monkeypatch.setenv("FLAN_SMTP_USER", "scanner")
    monkeypatch.setenv("FLAN_SMTP_PASSWORD", "pw-9f8e")
    report, changes = runs()
    # This server offers no STARTTLS: logging in needs the explicit smtp+insecure://.
    url = f"smtp+insecure://{where}/?to=sec@lab.invalid,ops@lab.invalid&from=flan@lab.invalid"
    assert send_alerts([url], report, changes, retry=FAST) == []
    assert box.logins == [("scanner", "pw-9f8e")]
    ((sender, rcpts, raw),) = box.messages
    assert sender == "flan@lab.invalid" and rcpts == ["sec@lab.invalid", "ops@lab.invalid"]
    msg = message_from_bytes(raw)
    assert msg["Subject"].startswith("Flan Scan: 4 new findings (2 critical, 1 high, 1 medium)")
    body = msg.get_payload(decode=True).decode()
    assert "CVE-2024-1111" in body and "https://nvd.nist.gov/vuln/detail/CVE-2024-1111" in body
    assert "198.18.0.12:80/tcp" in body and "\x1b" not in body


def test_email_bad_password_is_a_failure_without_the_password(
    smtp_server: tuple[str, _Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, box = smtp_server
    monkeypatch.setenv("FLAN_SMTP_USER", "scanner")
    monkeypatch.setenv("FLAN_SMTP_PASSWORD", "wrong-secret")
    report, changes = runs()
    url = f"smtp+insecure://{where}/?to=sec@lab.invalid"
    failures = send_alerts([url], report, changes, retry=FAST)
    assert len(failures) == 1 and failures[0].attempts == 1
    assert "wrong-secret" not in str(failures[0]) and "sec@lab.invalid" not in str(failures[0])
    assert box.messages == []


def test_email_never_sends_the_password_in_clear_without_starttls(
    smtp_server: tuple[str, _Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, box = smtp_server  # a server on loopback that offers no STARTTLS
    monkeypatch.setenv("FLAN_SMTP_USER", "scanner")
    monkeypatch.setenv("FLAN_SMTP_PASSWORD", "pw-9f8e")
    report, changes = runs()
    failures = send_alerts([f"smtp://{where}/?to=sec@lab.invalid"], report, changes, retry=FAST)
    assert len(failures) == 1 and failures[0].attempts == 1  # retrying would not help
    assert "not sent in clear" in str(failures[0]) and "smtp+insecure://" in str(failures[0])
    assert "pw-9f8e" not in str(failures[0])
    assert box.logins == [] and box.messages == []


def test_notify_url_validation() -> None:
    check_notify_urls(["https://hooks.example.invalid/x", "slack+https://chat.invalid/hooks/1",
                       "smtps://mail.invalid/?to=a@b.invalid"])  # fmt: skip
    with pytest.raises(UsageError, match="unsupported"):
        check_notify_urls(["ftp://x.invalid/"])
    with pytest.raises(UsageError, match="recipient"):
        check_notify_urls(["smtp://mail.invalid/"])
    with pytest.raises(UsageError, match="FLAN_SMTP_PASSWORD"):
        check_notify_urls(["smtp://u:p@mail.invalid/?to=a@b.invalid"])
    check_notify_urls(["smtp+insecure://mail.invalid/?to=a@b.invalid"])
    for crlf in ("a@b.invalid%0d%0aBcc:x@y.invalid", "a@b.invalid%0aX", "a@b.invalid%00"):
        with pytest.raises(UsageError, match="line break or control"):
            check_notify_urls([f"smtp://mail.invalid/?to={crlf}"])
    with pytest.raises(UsageError, match="line break or control"):
        check_notify_urls(["smtp://mail.invalid/?to=a@b.invalid&from=f@x.invalid%0d%0aBcc:z"])
