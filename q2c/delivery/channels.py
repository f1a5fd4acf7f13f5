"""What the email transports share: SMTP reply classification and `.eml` file writing.

`q2c.delivery.mail_transport` sends the outbox's finished message bytes through SMTP or
into an `.eml` folder. The functions here turn an smtplib or socket error into one of the
errors in `q2c.delivery.errors`, which tell the outbox whether to retry the channel or fail
over to the next one, and write a message file atomically and only once per outbox key.

Where a session failed decides whose fault it is: before a recipient is named (connection,
STARTTLS, AUTH, MAIL FROM) it is the channel's and the invoice keeps its channel
(`channel_unavailable`); at RCPT TO or DATA it may be the invoice's (`classify_smtp_error`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import smtplib
import ssl
import tempfile
from email.utils import parsedate_to_datetime
from pathlib import Path

from q2c.delivery.addresses import mask_address, scrub_address
from q2c.delivery.errors import (
    ChannelUnavailableError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

logger = logging.getLogger(__name__)

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_HEX_PREFIX = re.compile(r"[0-9a-f]{12}")


# The stages of an SMTP session before a recipient is named. A failure there is the
# channel's (server, network, credentials, sender address), never the invoice's.
CONNECT = "connect"
STARTTLS = "starttls"
AUTH = "auth"
MAIL_FROM = "mail_from"


def channel_unavailable(
    exc: Exception, *, stage: str, host: str, port: int, username: str | None,
    timeout: float, sender: str | None = None,
) -> ChannelUnavailableError:
    """Turn a failure at the connection, STARTTLS, AUTH or MAIL FROM stage into a
    `ChannelUnavailableError` that names the setting to check.

    Every invoice of the run would fail the same way, so the outbox keeps the rows for a
    later run instead of failing them over one by one as if their recipients were wrong.
    """
    server = f"SMTP server {host}:{port}"
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = reply_text(exc.smtp_code, exc.smtp_error, sender or "")
    else:
        detail = scrub_address(str(exc), sender or "") or type(exc).__name__
    if stage == MAIL_FROM:
        return ChannelUnavailableError(
            f"{server} refused the sender {mask_address(sender or '')} ({detail}): check "
            "that Q2C_MAIL_FROM may send through this server (and Q2C_SMTP_USER if the "
            "server wants a login first)"
        )
    if stage == STARTTLS and isinstance(exc, smtplib.SMTPNotSupportedError):
        return ChannelUnavailableError(
            f"{server} does not offer STARTTLS: check Q2C_SMTP_STARTTLS and Q2C_SMTP_PORT "
            "(the submission port, usually 587, offers it)"
        )
    if isinstance(exc, ssl.SSLError):
        return ChannelUnavailableError(
            f"TLS with {server} failed ({detail}): check the server certificate and "
            "Q2C_SMTP_STARTTLS"
        )
    if stage == AUTH and isinstance(exc, smtplib.SMTPAuthenticationError):
        return ChannelUnavailableError(
            f"{server} rejected the login of user {username!r} ({detail}): check "
            "Q2C_SMTP_USER and Q2C_SMTP_PASSWORD"
        )
    if stage == AUTH and isinstance(exc, smtplib.SMTPNotSupportedError):
        return ChannelUnavailableError(
            f"{server} offers no login (AUTH): unset Q2C_SMTP_USER, or set "
            "Q2C_SMTP_STARTTLS=true if it offers AUTH only over TLS"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return ChannelUnavailableError(
            f"{server} refused the session at {stage.upper()} ({detail}): check "
            + _SETTINGS_OF_STAGE[stage]
        )
    return _unreachable(exc, server, stage, detail, timeout)


_SETTINGS_OF_STAGE = {
    CONNECT: "Q2C_SMTP_HOST/Q2C_SMTP_PORT and that this host may use the server",
    STARTTLS: "Q2C_SMTP_STARTTLS and Q2C_SMTP_PORT",
    AUTH: "Q2C_SMTP_USER and Q2C_SMTP_PASSWORD",
}


def _unreachable(
    exc: Exception, server: str, stage: str, detail: str, timeout: float
) -> ChannelUnavailableError:
    """The connection itself failed: refused, timed out, dropped, or no such host."""
    if isinstance(exc, ConnectionRefusedError):
        return ChannelUnavailableError(
            f"{server} refused the connection: check that it is running and "
            "Q2C_SMTP_HOST/Q2C_SMTP_PORT"
        )
    if isinstance(exc, TimeoutError):
        return ChannelUnavailableError(
            f"{server} did not answer within {timeout:g}s (at {stage.upper()}): check the "
            "network path, Q2C_SMTP_HOST/Q2C_SMTP_PORT and the server's load"
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ChannelUnavailableError(
            f"{server} closed the connection at {stage.upper()} ({detail}): check that it "
            "is running and that the port speaks plain SMTP (with Q2C_SMTP_STARTTLS for "
            "encryption)"
        )
    if isinstance(exc, smtplib.SMTPException):
        return ChannelUnavailableError(
            f"{server} cannot be used as configured ({detail}): check Q2C_SMTP_STARTTLS "
            "and Q2C_SMTP_USER against what the server offers"
        )
    return ChannelUnavailableError(
        f"{server} could not be reached ({detail}): check Q2C_SMTP_HOST/Q2C_SMTP_PORT and "
        "the network"
    )


def classify_smtp_error(
    exc: Exception, *, host: str, port: int, recipient: str, timeout: float,
) -> Exception:
    """Turn a failure after MAIL FROM (at RCPT TO or DATA) into a delivery error.

    4xx replies, dropped connections and timeouts may work later unchanged; 5xx replies
    will not. The text names the server and what to check, never the full recipient
    address. Failures before RCPT TO go through `channel_unavailable`.
    """
    server = f"SMTP server {host}:{port}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (550, b""))
        detail = reply_text(code, reply, recipient)
        if 400 <= code < 500:
            return TransientDeliveryError(
                f"{server} deferred recipient {mask_address(recipient)} ({detail}); "
                "retried later"
            )
        return PermanentDeliveryError(
            f"{server} refused recipient {mask_address(recipient)} ({detail}): check the "
            "billing email on the customer record"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_reply_code(
            exc, recipient, f"{server} deferred the message",
            f"{server} rejected the message",
            "check the server's log and its limits on size and content",
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientDeliveryError(
            f"{server} closed the connection ({exc}): check that it is running; retried "
            "later"
        )
    if isinstance(exc, TimeoutError):
        return TransientDeliveryError(
            f"{server} did not answer within {timeout:g}s: check the network path "
            "and the server's load"
        )
    if isinstance(exc, smtplib.SMTPException):
        return PermanentDeliveryError(
            f"{server} could not take the message ({exc}): check the server's log"
        )
    return TransientDeliveryError(
        f"{server} connection failed while sending ({exc}): check the network; retried "
        "later"
    )


def eml_file_name(invoice_number: str, key: str) -> str:
    """`<invoice_number>-<12 characters of the key>.eml`, unsafe characters replaced.

    The outbox's keys start with a hex digest, whose first 12 characters tell messages
    apart. A key with a readable prefix (`portal-signin-...`) would give every such message
    one name, and the write-once rule would drop all but the first: its digest is used.
    """
    tag = key[:12]
    if not _HEX_PREFIX.fullmatch(tag):
        tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{_UNSAFE_FILE_CHARS.sub('_', invoice_number)[:80]}-{tag}.eml"


def write_eml_once(
    outbox_dir: Path, invoice_number: str, key: str, day: dt.date, payload: bytes
) -> Path:
    """Write one message as `<outbox_dir>/<day>/<number>-<key[:12]>.eml` unless it exists.

    A file for the same invoice and key in any date folder is kept as it is, so a resend
    after a crash (or on another day) does not leave a second file behind.

    Raises:
        PermanentDeliveryError: The folder is not writable.
        TransientDeliveryError: The write failed for a reason that may pass (disk full).
    """
    file_name = eml_file_name(invoice_number, key)
    existing = sorted(Path(outbox_dir).glob(f"*/{file_name}"))
    if existing:
        logger.info("invoice %s already written to %s; kept", invoice_number,
                    existing[0])
        return existing[0]
    target = Path(outbox_dir) / day.isoformat() / file_name
    try:
        write_once(target, payload)
    except PermissionError as exc:
        raise PermanentDeliveryError(
            f"cannot write {target}: check that the outbox folder {outbox_dir} "
            "is writable by this process (Q2C_OUTBOX_DIR)"
        ) from exc
    except OSError as exc:
        raise TransientDeliveryError(
            f"writing {target} failed ({exc.strerror or exc}): check free disk space "
            f"and that {outbox_dir} is mounted"
        ) from exc
    return target


def utc_date_of(date_header: object) -> dt.date:
    """The UTC day of a Date header; today when the header is missing or unreadable."""
    try:
        sent = parsedate_to_datetime(str(date_header))
    except (TypeError, ValueError):
        return dt.datetime.now(dt.UTC).date()
    if sent.tzinfo is None:
        return sent.date()
    return sent.astimezone(dt.UTC).date()


def write_once(target: Path, payload: bytes) -> None:
    """Write `payload` to `target` atomically; leave an existing `target` untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link() fails when the target exists, so two writers cannot both create it.
            os.link(temp_name, target)
        except FileExistsError:
            logger.info("message file %s appeared meanwhile; kept", target)
        except OSError:
            # File systems without hard links: rename, after a last look for the target.
            if not target.exists():
                os.replace(temp_name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)


def _by_reply_code(
    exc: smtplib.SMTPResponseException, recipient: str, deferred: str, refused: str,
    advice: str,
) -> Exception:
    """A 4xx reply is worth retrying later; a 5xx reply will not change by itself."""
    detail = reply_text(exc.smtp_code, exc.smtp_error, recipient)
    if 400 <= exc.smtp_code < 500:
        return TransientDeliveryError(f"{deferred} ({detail})")
    return PermanentDeliveryError(f"{refused} ({detail}): {advice}")


def reply_text(code: int, reply: bytes | str, recipient: str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return scrub_address(f"{code} {text}".strip(), recipient)


def quit_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
