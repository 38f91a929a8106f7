"""Alert channels: a Slack incoming webhook, email through SMTP, email through Amazon SES."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import httpx

from flowlens.alerts.message import Alert
from flowlens.github.rest import parse_float

USER_AGENT = "flowlens-alerts/0.1"


class ChannelError(Exception):
    """A send that failed; `permanent` means retrying cannot help, `retry_after` is a hint."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    """Something that delivers an alert (name is what alert_history records)."""

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


class SlackChannel:
    """POSTs the alert as JSON to a Slack incoming webhook."""

    name = "slack"

    def __init__(self, webhook_url: str, *, timeout: float = 10.0) -> None:
        self.webhook_url = webhook_url
        self._client = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT})

    async def send(self, alert: Alert) -> None:
        """One POST; 2xx is delivered, 429/5xx are worth retrying, other 4xx are not."""
        try:
            response = await self._client.post(self.webhook_url, json=alert.slack_payload())
        except httpx.TimeoutException as exc:
            raise ChannelError(f"slack: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ChannelError(f"slack: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status < 300:
            return
        body = response.text[:200].strip()
        retry_after = parse_float(response.headers.get("Retry-After"))
        retry_after = max(0.0, retry_after) if retry_after is not None else None
        transient = status >= 500 or status in (408, 429)
        raise ChannelError(
            f"slack: HTTP {status}" + (f": {body}" if body else ""),
            permanent=not transient,
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def email_message(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    """A plain-text email of the alert."""
    message = EmailMessage()
    message["Subject"] = alert.email_subject()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "flowlens")
    message.set_content(alert.text())
    return message


class SmtpChannel:
    """Sends the alert by SMTP (smtplib in a worker thread, so the event loop never blocks)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        *,
        tls: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout

    async def send(self, alert: Alert) -> None:
        """One SMTP transaction; 4xx replies and connection errors are retried, 5xx are not."""
        message = email_message(alert, self.sender, self.recipients)
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise ChannelError(
                f"smtp: {exc.smtp_code} {text}"[:300], permanent=500 <= exc.smtp_code < 600
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise ChannelError(
                f"smtp: recipients refused: {exc.recipients}"[:300],
                permanent=all(500 <= c < 600 for c in codes),
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"smtp: {type(exc).__name__}: {exc}"[:300]) from exc

    def _send(self, message: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.tls == "ssl":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message, from_addr=self.sender, to_addrs=self.recipients)

    async def aclose(self) -> None:
        """Nothing is kept open between sends."""


# Amazon SES errors that no retry can fix (bad address, unverified sender, bad request).
_SES_PERMANENT = {
    "MessageRejected",
    "MailFromDomainNotVerified",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExist",
    "InvalidParameterValue",
    "AccessDenied",
    "AccessDeniedException",
    "ValidationError",
}


class SesChannel:
    """Sends the alert through Amazon SES (boto3 `ses.send_email` in a worker thread)."""

    name = "email"

    def __init__(
        self,
        sender: str,
        recipients: list[str],
        *,
        region: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.sender = sender
        self.recipients = recipients
        self.region = region
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def _ses(self) -> Any:
        # Built on first use, in the worker thread: boto3 sessions are not thread-safe to
        # share, a client is. Credentials come from boto3's usual chain (env, role...).
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                session = boto3.session.Session()
                self._client = session.client(
                    "ses",
                    region_name=self.region,
                    config=Config(
                        connect_timeout=self.timeout,
                        read_timeout=self.timeout,
                        retries={"max_attempts": 1},
                    ),
                )
            return self._client

    async def send(self, alert: Alert) -> None:
        """One SendEmail call; throttling and 5xx are retried, rejections are not."""
        from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

        try:
            await asyncio.to_thread(self._send, alert)
        except NoRegionError as exc:
            raise ChannelError("ses: no region (set ALERT_SES_REGION)", permanent=True) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            raise ChannelError(
                f"ses: {code}: {error.get('Message', '')}"[:300],
                permanent=code in _SES_PERMANENT or (400 <= status < 500 and "Throttl" not in code),
            ) from exc
        except BotoCoreError as exc:
            raise ChannelError(f"ses: {type(exc).__name__}: {exc}"[:300]) from exc

    def _send(self, alert: Alert) -> None:
        self._ses().send_email(
            Source=self.sender,
            Destination={"ToAddresses": self.recipients},
            Message={
                "Subject": {"Data": alert.email_subject(), "Charset": "UTF-8"},
                "Body": {"Text": {"Data": alert.text(), "Charset": "UTF-8"}},
            },
        )

    async def aclose(self) -> None:
        """Nothing to close (boto3 clients hold no open sockets worth closing here)."""
