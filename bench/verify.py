#!/usr/bin/env python3
"""Forward auth and scoped credentials against the floor: authd's JSON 404 (unauthenticated),
GET /token/verify/ with a token (a user in two groups holding 20 permissions), the same asking for
a permission the user holds, guarded GET /users/me/ for comparison, and both again with a scoped
OAuth2 access token (5 of the 20 permissions) and with an API key in X-API-Key (the same 5);
alternating wrk rounds (BENCH_ROUNDS, 3 by default) at c=16, medians. On a fresh SQLite
database, or PostgreSQL with AUTHD_BENCH_POSTGRES_URL (a database of its own, dropped and made
again).

Target (issue 15): /token/verify/ ÷ floor at least 0.70; guarded ÷ floor with scoped tokens
shown in the same run.

    cargo build --release --bins
    python3 bench/verify.py
"""

import json
import os
import statistics
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, Server, post, wrk  # noqa: E402
from authorization import database_url  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = 16


def put_in_groups(server):
    """Two groups of ten permissions each, the user in both."""
    for index in range(20):
        server.command("permission", "create", f"shop.perm_{index:02}", "--name", f"Permission {index}")
    for group, first in (("buyers", 0), ("sellers", 10)):
        args = ["group", "create", group]
        for index in range(first, first + 10):
            args += ["--permission", f"shop.perm_{index:02}"]
        server.command(*args)
        server.command("user", "add-to-group", "bench", group)


SCOPE = " ".join(f"shop.perm_{index:02}" for index in (1, 5, 11, 15, 19))


def scoped_access_token(server):
    """An OAuth2 password grant limited to SCOPE."""
    body = urllib.parse.urlencode({"grant_type": "password", "username": "bench",
                                   "password": PASSWORD, "scope": SCOPE}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{server.base}/oauth/token", data=body)) as answer:
        return json.loads(answer.read())["access_token"]


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release --bins")
    with tempfile.TemporaryDirectory() as directory:
        server = Server(database_url(directory, "verify"))
        try:
            post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
            put_in_groups(server)
            token = post(f"{server.base}/token/login/",
                         {"username": "bench", "password": PASSWORD})["auth_token"]
            authorization = ("-H", f"Authorization: Token {token}")
            scoped = ("-H", f"Authorization: Bearer {scoped_access_token(server)}")
            key = post(f"{server.base}/token/keys/",
                       {"name": "bench", "scope": SCOPE, "current_password": PASSWORD}, token)["key"]
            api_key = ("-H", f"X-API-Key: {key}")
            measured = {
                "verify": (f"{server.base}/token/verify/", authorization),
                "verify ?permission=": (f"{server.base}/token/verify/?permission=shop.perm_15", authorization),
                "guarded /users/me/": (f"{server.base}/users/me/", authorization),
                "verify, scoped token": (f"{server.base}/token/verify/", scoped),
                "guarded, scoped token": (f"{server.base}/users/me/", scoped),
                "verify, API key": (f"{server.base}/token/verify/", api_key),
                "guarded, API key": (f"{server.base}/users/me/", api_key),
            }
            rounds = {"floor": [], **{name: [] for name in measured}}
            for _ in range(ROUNDS):
                rounds["floor"].append(wrk(f"{server.base}/nothing/", CONNECTIONS)["rps"])
                for name, (url, extra) in measured.items():
                    answered = wrk(url, CONNECTIONS, extra)
                    if answered["non2xx"]:
                        raise SystemExit(f"{name}: {answered['non2xx']} requests failed")
                    rounds[name].append(answered["rps"])
        finally:
            server.stop()

    floor = statistics.median(rounds["floor"])
    print(f"| | req/s | ÷ floor |\n|---|---:|---:|\n| floor (JSON 404) | {floor:.0f} | 1.00 |")
    for name in measured:
        rps = statistics.median(rounds[name])
        print(f"| {name} | {rps:.0f} | {rps / floor:.2f} |")


if __name__ == "__main__":
    main()
