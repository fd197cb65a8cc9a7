#!/usr/bin/env python3
"""What authd's own TLS costs on the serving path, in one run: two release servers side by side
on fresh SQLite databases, one serving HTTPS (AUTHD_TLS_CERT_FILE/AUTHD_TLS_KEY_FILE, an
ECDSA P-256 certificate made here with openssl) and one plain HTTP, and alternating wrk rounds
at c=16 on each, over keep-alive connections (one handshake per wrk connection):

- the floor: GET /healthz (no database, no guard);
- guarded GET /users/me/ (the token guard, answered from its cache).

Reports guarded ÷ floor over TLS beside plain HTTP (medians of the rounds), and each endpoint's
throughput TLS ÷ plain. Run by hand on a quiet machine:

    cargo build --release --bins
    python3 bench/tls.py                # BENCH_ROUNDS (default 3), BENCH_DURATION (default 10s)
"""

import os
import ssl
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metrics import CONNECTIONS, ROUNDS, floor_and_guarded, token_for  # noqa: E402
from run import Server  # noqa: E402


def make_pair(workdir):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    cert, key = f"{workdir}/cert.pem", f"{workdir}/key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def trust_only(cert):
    """urllib (start-up probe, sign-up and login) verifies against this certificate alone."""
    context = ssl.create_default_context(cafile=cert)
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPSHandler(context=context)))


def main():
    with tempfile.TemporaryDirectory() as workdir:
        cert, key = make_pair(workdir)
        trust_only(cert)
        servers = {
            "tls": Server(f"sqlite://{workdir}/tls.sqlite3?mode=rwc", scheme="https",
                          AUTHD_TLS_CERT_FILE=cert, AUTHD_TLS_KEY_FILE=key),
            "plain": Server(f"sqlite://{workdir}/plain.sqlite3?mode=rwc"),
        }
        try:
            tokens = {name: token_for(server) for name, server in servers.items()}
            median = floor_and_guarded(servers, tokens, "tls")
        finally:
            for server in servers.values():
                server.stop()
    print()
    print(f"rounds: {ROUNDS} × {os.environ.get('BENCH_DURATION', '10s')} at c={CONNECTIONS}, medians")
    print("| | floor `GET /healthz` | guarded `GET /users/me/` | guarded ÷ floor |")
    print("|---|---:|---:|---:|")
    for name in servers:
        ratio = median[(name, "guarded")] / median[(name, "floor")]
        print(f"| {name} | {median[(name, 'floor')]:.0f} | {median[(name, 'guarded')]:.0f} | {ratio:.2f} |")
    print(f"| tls ÷ plain | {median[('tls', 'floor')] / median[('plain', 'floor')]:.2f} | "
          f"{median[('tls', 'guarded')] / median[('plain', 'guarded')]:.2f} | |")


if __name__ == "__main__":
    main()
