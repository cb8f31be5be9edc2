#!/usr/bin/env python3
"""A local SMTP server for SwitchboardSMTP's integration tests (built on aiosmtpd).

It listens on a loopback address and saves every accepted message as two files in
--maildir:

    msg-000001.eml   the raw message bytes exactly as received (after dot-unstuffing)
    msg-000001.json  the envelope: mail_from, rcpt_tos, mail_options, rcpt_options,
                     connection id, whether the session was TLS, the AUTH mechanism

It also keeps --maildir/connections.txt up to date with the number of SMTP
sessions (connections that said EHLO/HELO) so far, so tests can check connection
reuse; each message's JSON names the session it arrived on.

Modes (--mode):
    plain     plaintext SMTP
    starttls  plaintext + STARTTLS (required before MAIL)
    tls       implicit TLS from the first byte
    silent    accepts TCP connections and never says anything (for timeout tests)

Special recipients (local part, case-insensitive):
    nosuchuser@...     -> 550 5.1.1 no such user
    tempfail@...       -> 451 4.3.0 try again (always)
    tempfail-once@...  -> 451 4.3.0 try again the first time, accepted afterwards

TLS material (a private CA with a server certificate it signed, and a self-signed
server certificate, all for localhost / 127.0.0.1 / ::1) is generated with the
openssl command line into --tls-dir if it is not there yet. Clients trust
--tls-dir/ca.pem, or --tls-dir/selfsigned.pem with --self-signed.

Example:
    python3 smtp_test_server.py --port 2525 --mode starttls --tls-dir /tmp/tls \
        --maildir /tmp/mail --auth --user alice --password secret
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:  # pragma: no cover - reported to the test as a clear message
    sys.stderr.write(
        "aiosmtpd is not installed: run scripts/install-test-deps.sh (pip install aiosmtpd)\n"
    )
    sys.exit(3)


def generate_tls_material(directory: Path) -> None:
    """Creates, once, in `directory`:

    ca.pem / ca.key                   a private test CA
    server.pem / server.key           a server certificate signed by that CA
    selfsigned.pem / selfsigned.key   a self-signed server certificate

    Both server certificates are for DNS:localhost, IP:127.0.0.1 and IP:::1.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key = directory / "server.pem", directory / "server.key"
    self_cert, self_key = directory / "selfsigned.pem", directory / "selfsigned.key"
    if all(p.exists() for p in (ca_cert, cert, key, self_cert, self_key)):
        return
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
    )
    csr = directory / "server.csr"

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256", "-days", "3",
        "-subj", "/CN=Switchboard SMTP Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(ca_key), "-out", str(ca_cert))
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
        "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "3", "-sha256", "-extfile", str(ext), "-out", str(cert))
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256", "-days", "3",
        "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        "-keyout", str(self_key), "-out", str(self_cert))


class State:
    """Counters shared by every connection of one server process."""

    def __init__(self, maildir: Path):
        self.maildir = maildir
        self.connections = 0
        self.messages = 0
        self.tempfail_once_seen = set()

    def connection_opened(self) -> int:
        self.connections += 1
        (self.maildir / "connections.txt").write_text(f"{self.connections}\n")
        return self.connections


class Handler:
    def __init__(self, state: State):
        self.state = state

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "nosuchuser":
            return "550 5.1.1 no such user"
        if local == "tempfail":
            return "451 4.3.0 try again"
        if local == "tempfail-once" and address.lower() not in self.state.tempfail_once_seen:
            self.state.tempfail_once_seen.add(address.lower())
            return "451 4.3.0 try again"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.state.messages += 1
        number = self.state.messages
        base = self.state.maildir / f"msg-{number:06d}"
        raw = envelope.original_content or b""
        auth = session.auth_data if isinstance(session.auth_data, dict) else None
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "smtp_utf8": envelope.smtp_utf8,
            "connection_id": getattr(server, "connection_id", None),
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "auth_mechanism": auth.get("mechanism") if auth else None,
            "auth_login": auth.get("login") if auth else None,
            "size": len(raw),
        }
        # Write the .eml first: a test that sees the .json can rely on both.
        base.with_suffix(".eml").write_bytes(raw)
        tmp = base.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.rename(base.with_suffix(".json"))
        return f"250 2.0.0 OK queued as {number}"


class PipeliningHandler(Handler):
    """Also announces PIPELINING (RFC 2920). aiosmtpd reads commands one line at a
    time from its stream, so it handles pipelined commands correctly."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]


def make_authenticator(user: str, password: str):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if auth_data.login == user.encode() and auth_data.password == password.encode():
            return AuthResult(success=True, auth_data={"mechanism": mechanism, "login": user})
        return AuthResult(success=False, handled=False)

    return authenticator


class CountingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, numbering each SMTP session.

    A session is counted when the client first says EHLO or HELO, so that a bare
    TCP readiness probe is not counted, and a second EHLO after STARTTLS (same
    connection, same protocol object) is not counted twice.
    """

    state: State = None  # set by the factory
    refuse_ehlo = False  # set by the factory: behave like a pre-ESMTP server
    connection_id = None

    def _count_session(self):
        if self.connection_id is None:
            self.connection_id = self.state.connection_opened()

    async def smtp_EHLO(self, arg):
        self._count_session()
        if self.refuse_ehlo:
            await self.push("502 5.5.1 EHLO not implemented")
            return
        await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg):
        self._count_session()
        await super().smtp_HELO(arg)


async def silent_server(host: str, port: int, state: State):
    async def accept(reader, writer):
        state.connection_opened()
        try:
            await reader.read()  # never answer; wait for the client to give up
        finally:
            writer.close()

    return await asyncio.start_server(accept, host, port)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["plain", "starttls", "tls", "silent"], default="plain")
    parser.add_argument("--maildir", required=True, type=Path)
    parser.add_argument("--tls-dir", type=Path, help="where to find or generate ca.pem / server.pem")
    parser.add_argument("--self-signed", action="store_true",
                        help="serve the self-signed certificate (selfsigned.pem) instead of the CA-signed one")
    parser.add_argument("--auth", action="store_true", help="enable AUTH (PLAIN and LOGIN)")
    parser.add_argument("--auth-mechanisms", default="PLAIN,LOGIN",
                        help="comma-separated mechanisms to offer (subset of PLAIN,LOGIN)")
    parser.add_argument("--auth-require-tls", action=argparse.BooleanOptionalAction, default=True,
                        help="only offer AUTH after STARTTLS (ignored in tls mode, where TLS is implicit)")
    parser.add_argument("--user", default="switchboard")
    parser.add_argument("--password", default="s3cret!")
    parser.add_argument("--idle-timeout", type=float, default=300,
                        help="seconds before an idle client is sent 421 and disconnected")
    parser.add_argument("--hostname", default="smtp.test.local")
    parser.add_argument("--pipelining", action="store_true", help="announce PIPELINING in the EHLO reply")
    parser.add_argument("--no-ehlo", action="store_true", help="answer EHLO with 502 (clients must fall back to HELO)")
    args = parser.parse_args()

    args.maildir.mkdir(parents=True, exist_ok=True)
    state = State(args.maildir)
    (args.maildir / "connections.txt").write_text("0\n")

    loop = asyncio.get_running_loop()
    if args.mode == "silent":
        server = await silent_server(args.host, args.port, state)
    else:
        server_ssl = None
        if args.mode in ("starttls", "tls"):
            if args.tls_dir is None:
                parser.error("--tls-dir is required for starttls and tls modes")
            generate_tls_material(args.tls_dir)
            server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            name = "selfsigned" if args.self_signed else "server"
            server_ssl.load_cert_chain(args.tls_dir / f"{name}.pem", args.tls_dir / f"{name}.key")

        offered = {m.strip().upper() for m in args.auth_mechanisms.split(",") if m.strip()}
        excluded = [m for m in ("PLAIN", "LOGIN") if m not in offered]
        smtp_kwargs = dict(
            hostname=args.hostname,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=args.idle_timeout,
            auth_exclude_mechanism=excluded,
        )
        if args.auth:
            smtp_kwargs["authenticator"] = make_authenticator(args.user, args.password)
            # aiosmtpd cannot see implicit TLS, so it would never offer AUTH there.
            smtp_kwargs["auth_require_tls"] = args.auth_require_tls and args.mode != "tls"
        else:
            smtp_kwargs["auth_require_tls"] = True
        if args.mode == "starttls":
            smtp_kwargs["tls_context"] = server_ssl
            smtp_kwargs["require_starttls"] = True

        handler = PipeliningHandler(state) if args.pipelining else Handler(state)

        def factory():
            protocol = CountingSMTP(handler, **smtp_kwargs)
            protocol.state = state
            protocol.refuse_ehlo = args.no_ehlo
            return protocol

        server = await loop.create_server(
            factory, host=args.host, port=args.port,
            ssl=server_ssl if args.mode == "tls" else None,
        )

    stop = asyncio.Event()
    # A parent that spawns us from a thread with SIGTERM blocked (e.g. a libdispatch
    # worker thread) passes that signal mask on: unblock, or SIGTERM would be ignored.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = asyncio.create_task(watch_parent(os.getppid(), stop))
    print(f"READY {args.host}:{args.port} mode={args.mode}", flush=True)
    await stop.wait()
    watchdog.cancel()
    server.close()
    try:
        # Do not wait for clients that keep their connection open.
        await asyncio.wait_for(server.wait_closed(), timeout=1)
    except (asyncio.TimeoutError, Exception):
        pass


async def watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Stops the server if the process that started it goes away (e.g. a crashed test run)."""
    while True:
        await asyncio.sleep(1)
        if os.getppid() != parent_pid:
            stop.set()
            return


if __name__ == "__main__":
    asyncio.run(main())
