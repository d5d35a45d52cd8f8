"""An SMTP server for the email sink's TLS tests (tests/it/email_tls.rs): aiosmtpd delivering
into a Maildir, AUTH required, over STARTTLS or implicit TLS (SMTPS).

    python3 smtpd_tls.py --mode starttls|implicit --cert CERT.pem --key KEY.pem \
        --user USER --password PASSWORD --maildir DIR

It listens on an ephemeral port of 127.0.0.1 and prints `PORT <n>` once it accepts
connections, so the test never races another process for a port. It runs aiosmtpd's SMTP class
on its own event loop instead of `aiosmtpd.controller.Controller`, which needs the port up
front (its readiness probe connects to `self.port`, so port 0 does not work).

Each delivered message gets two headers the tests check, so a pass proves the mail came the
way the test meant it to: `X-Test-TLS` (the TLS version of the connection that carried DATA)
and `X-Test-Auth` (the user that authenticated).
"""

import argparse
import asyncio
import logging
import ssl
import sys
import warnings

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def tls_version(server):
    ssl_object = server.transport.get_extra_info("ssl_object")
    return ssl_object.version() if ssl_object is not None else None


class TlsMaildir(Mailbox):
    async def handle_DATA(self, server, session, envelope):
        session.test_tls = tls_version(server) or "none"
        return await super().handle_DATA(server, session, envelope)

    def prepare_message(self, session, envelope):
        message = super().prepare_message(session, envelope)
        message["X-Test-TLS"] = session.test_tls
        message["X-Test-Auth"] = session.auth_data or ""
        return message


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        # aiosmtpd's own `auth_require_tls` only knows about STARTTLS; checking the transport
        # holds for SMTPS as well.
        if tls_version(server) is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login == user.encode() and auth_data.password == password.encode()
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    return check


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["starttls", "implicit"], required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--maildir", required=True)
    a = p.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)
    handler = TlsMaildir(a.maildir)
    starttls = a.mode == "starttls"

    def factory():
        return SMTP(
            handler,
            hostname="smtpd.test",
            tls_context=context if starttls else None,
            require_starttls=starttls,
            auth_required=True,
            # In SMTPS mode aiosmtpd cannot tell the connection is encrypted and would refuse
            # AUTH; the authenticator above checks the transport in both modes instead.
            auth_require_tls=starttls,
            authenticator=authenticator(a.user, a.password),
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, "127.0.0.1", 0, ssl=None if starttls else context
    )
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # auth_require_tls=False (SMTPS mode) draws a warning meant for plaintext servers.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    asyncio.run(main())
