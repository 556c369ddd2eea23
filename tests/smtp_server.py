"""A real SMTP server on loopback for tests, built on aiosmtpd's threaded `Controller`.

    with LocalSMTPServer(starttls=True, auth=("ada", "secret")) as server:
        transport = SMTPTransport(server.url, ssl_context=server.client_ssl_context())
        ...
        assert server.messages[0]["Subject"] == "..."
        assert server.connections == 1

Options cover what a relay does to a sender: AUTH, STARTTLS or implicit TLS with a test
certificate (from `trustme`), and faults: a 451 or a 554 for the first N DATA commands, a 550
for chosen senders or recipients, and a connection dropped in the middle of DATA (after the
content, before the reply, so the client cannot tell whether the message arrived: nothing is
kept, as a crash would do).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Collection
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


class ReceivedMessage(EmailMessage):
    """A message as the server received it, with its envelope.

    It *is* an `EmailMessage` (parsed with `email.policy.default`), so headers and parts read as
    usual; the envelope and connection facts ride along as attributes.
    """

    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    raw: bytes = b""
    tls: bool = False
    authenticated_as: str | None = None


_PARSER = BytesParser(policy=policy.default.clone(message_factory=ReceivedMessage))


@lru_cache(maxsize=1)
def certificate_authority() -> trustme.CA:
    """One throwaway certificate authority per test run (key generation is the slow part)."""
    return trustme.CA()


def server_ssl_context() -> ssl.SSLContext:
    """A server context whose certificate is valid for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority().issue_cert(HOST, "localhost").configure_cert(context)
    return context


def client_ssl_context() -> ssl.SSLContext:
    """A normal verifying client context that also trusts the test authority."""
    context = ssl.create_default_context()
    certificate_authority().configure_trust(context)
    return context


class _Controller(Controller):
    """A Controller that listens on a port the OS picked and counts client connections."""

    def __init__(self, handler: _Handler, *, auth_require_tls: bool, **kwargs: Any) -> None:
        super().__init__(handler, hostname=HOST, port=0, auth_require_tls=True, **kwargs)
        self.auth_require_tls = auth_require_tls
        self.connections = 0
        self.counting = False  # off until start() returns: its own probe is not a client

    def factory(self) -> SMTP:
        if self.counting:
            self.connections += 1
        smtpd = super().factory()
        # aiosmtpd only counts STARTTLS as TLS, and warns on every connection when AUTH may go
        # without it; tests of implicit TLS or of loopback AUTH want exactly that, quietly.
        smtpd._auth_require_tls = self.auth_require_tls
        return smtpd

    def _trigger_server(self) -> None:
        # Controller probes its own port to finish starting; port 0 must become the real one first.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    """aiosmtpd hooks: record what arrives, and play the faults the test asked for."""

    def __init__(
        self,
        tempfail_data: int,
        reject_recipients: Collection[str],
        drop_data: int,
        reject_senders: Collection[str] = (),
        reject_data: int = 0,
    ) -> None:
        self.tempfail_data = tempfail_data
        self.reject_recipients = {address.lower() for address in reject_recipients}
        self.drop_data = drop_data
        self.reject_senders = {address.lower() for address in reject_senders}
        self.reject_data = reject_data
        self.received: list[ReceivedMessage] = []
        self.lock = threading.Lock()

    async def handle_MAIL(  # noqa: N802 (aiosmtpd's hook names)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address.lower() in self.reject_senders:
            return f"550 5.7.1 <{address}>: Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address.lower() in self.reject_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self.lock:
            drop = self.drop_data > 0
            tempfail = not drop and self.tempfail_data > 0
            refuse = not (drop or tempfail) and self.reject_data > 0
            if drop:
                self.drop_data -= 1
            elif tempfail:
                self.tempfail_data -= 1
            elif refuse:
                self.reject_data -= 1
        if drop:
            assert server.transport is not None
            server.transport.abort()
            # aiosmtpd cancels this coroutine when it sees the connection gone: no reply is sent.
            await asyncio.sleep(60)
        if tempfail:
            return "451 4.3.0 Temporary failure, please try again later"
        if refuse:
            return "554 5.7.1 Message rejected: content policy"
        return f"250 2.0.0 Ok: queued as {self._keep(server, session, envelope)}"

    def _keep(self, server: SMTP, session: Session, envelope: Envelope) -> int:
        raw = envelope.original_content or b""
        message = _PARSER.parsebytes(raw)
        assert isinstance(message, ReceivedMessage)
        message.mail_from = envelope.mail_from or ""
        message.rcpt_tos = tuple(envelope.rcpt_tos)
        message.raw = raw
        message.tls = server.transport is not None and bool(
            server.transport.get_extra_info("ssl_object")
        )
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        message.authenticated_as = login.decode() if login is not None else None
        with self.lock:
            self.received.append(message)
            return len(self.received)


class _PipeliningHandler(_Handler):
    """The same hooks, and PIPELINING (RFC 2920) offered: aiosmtpd reads commands one after
    another from its stream, so it answers pipelined ones in order without saying so."""

    async def handle_EHLO(  # noqa: N802 (aiosmtpd's hook names)
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class _Authenticator:
    """Accepts exactly one username/password pair (AUTH PLAIN or LOGIN)."""

    def __init__(self, username: str, password: str) -> None:
        self.expected = LoginPassword(username.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        # handled=False: let aiosmtpd send the 535 itself (handled=True would leave the client
        # waiting for a reply that never comes).
        return AuthResult(success=data == self.expected, handled=False, auth_data=data)


class LocalSMTPServer:
    """A real SMTP server on 127.0.0.1 and a free port; start/stop it with `with`.

    auth:               (username, password) that clients must AUTH with before MAIL
    starttls:           offer STARTTLS with a test certificate (AUTH then requires TLS)
    require_starttls:   refuse everything but EHLO/STARTTLS/QUIT before TLS
    implicit_tls:       speak TLS from the first byte (smtps)
    tempfail_data:      reply 451 to the first N DATA commands
    reject_recipients:  reply 550 at RCPT for these addresses
    reject_senders:     reply 550 at MAIL for these addresses
    reject_data:        reply 554 (content refused) to the first N DATA commands
    drop_data:          drop the connection during the first N DATA commands, before replying
    smtputf8:           offer SMTPUTF8 (RFC 6531): addresses with a non-ASCII local part
    pipelining:         offer PIPELINING (RFC 2920)
    """

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        tempfail_data: int = 0,
        reject_recipients: Collection[str] = (),
        drop_data: int = 0,
        smtputf8: bool = False,
        reject_senders: Collection[str] = (),
        reject_data: int = 0,
        pipelining: bool = False,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("choose STARTTLS or implicit TLS, not both")
        self.auth = auth
        self.implicit_tls = implicit_tls
        self._handler = (_PipeliningHandler if pipelining else _Handler)(
            tempfail_data, reject_recipients, drop_data, reject_senders, reject_data
        )
        self._controller = _Controller(
            self._handler,
            ssl_context=server_ssl_context() if implicit_tls else None,
            tls_context=server_ssl_context() if starttls else None,
            require_starttls=require_starttls,
            auth_required=auth is not None,
            auth_require_tls=starttls,
            authenticator=_Authenticator(*auth) if auth else None,
            enable_SMTPUTF8=smtputf8,
        )

    def start(self) -> LocalSMTPServer:
        self._controller.start()
        self._controller.counting = True
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> LocalSMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def url(self) -> str:
        """`smtp://` or `smtps://` host:port, with the AUTH credentials in it when required."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        credentials = ""
        if self.auth is not None:
            username, password = (quote(part, safe="") for part in self.auth)
            credentials = f"{username}:{password}@"
        return f"{scheme}://{credentials}{self.host}:{self.port}"

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Messages accepted so far, oldest first (a copy: the server thread appends)."""
        with self._handler.lock:
            return list(self._handler.received)

    @property
    def connections(self) -> int:
        """How many client connections the server has accepted."""
        return self._controller.connections

    def client_ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context()

    def clear(self) -> None:
        """Forget the messages received so far (the connection count stays)."""
        with self._handler.lock:
            self._handler.received.clear()
