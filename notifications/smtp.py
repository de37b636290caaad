"""The outbox's SMTP backend: Django's, told apart at the one moment that matters.

An SMTP delivery has a point of no return: the server's answer to the message itself
(after DATA and the final "."). Before the message has gone out, a failure means the
server does not have it, and the outbox tries again. Once it has gone out and the answer
does not come (a timeout, a dropped connection), nobody here can tell whether the server
took it: EmailAcceptanceUnknown, and the outbox marks the row sent_unconfirmed instead
of sending a second copy. A failure after the server took it (QUIT timing out) is no
failure of the delivery at all.

EMAIL_BACKEND = "notifications.smtp.EmailBackend" in production; its settings are
Django's (EMAIL_HOST, EMAIL_PORT, EMAIL_USE_TLS, EMAIL_TIMEOUT...).
"""

import logging
import smtplib

from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend

logger = logging.getLogger(__name__)
END_OF_MESSAGE = b"\r\n.\r\n"


class EmailAcceptanceUnknown(Exception):
    """The message went out to the server and its answer never came."""


class _MessageSentMark:
    """An SMTP connection that notes when a message's last line has gone out."""

    message_sent = False

    def send(self, s) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(END_OF_MESSAGE):
            self.message_sent = True


class _SMTP(_MessageSentMark, smtplib.SMTP):
    pass


class _SMTPSSL(_MessageSentMark, smtplib.SMTP_SSL):
    pass


class EmailBackend(DjangoSMTPBackend):
    @property
    def connection_class(self):
        return _SMTPSSL if self.use_ssl else _SMTP

    def send_messages(self, email_messages) -> int:
        with self._lock:
            new_connection = self.open()
            if not self.connection or new_connection is None:
                return 0
            try:
                return sum(bool(self._send_one(message)) for message in email_messages)
            finally:
                if new_connection:
                    self._close_after_send()

    def _send_one(self, email_message) -> bool:
        self.connection.message_sent = False
        try:
            return self._send(email_message)
        except smtplib.SMTPResponseException:
            raise  # the server answered, and said no: it does not have the message
        except (OSError, smtplib.SMTPException) as exc:
            if self.connection.message_sent:
                raise EmailAcceptanceUnknown(
                    f"the message went out and no answer came: {exc.__class__.__name__} {exc}"
                ) from exc
            raise

    def _close_after_send(self) -> None:
        """QUIT; its failure changes nothing about what was delivered."""
        try:
            self.close()
        except (OSError, smtplib.SMTPException) as exc:
            logger.warning("SMTP QUIT failed after the delivery: %s", exc)
            self.connection = None
