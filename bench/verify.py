#!/usr/bin/env python3
"""Forward auth and scoped credentials against the floor: authd's JSON 404 (unauthenticated),
GET /token/verify/ with a token (a user in two groups holding 20 permissions), the same asking for
a permission the user holds, guarded GET /users/me/ for comparison, and both again with a scoped
OAuth2 access token (5 of the 20 permissions) and with an API key in X-API-Key (the same 5);
guarded GET /users/me/ with the same user's DRF key (40 hex), brought by `authd import-django`
from a Django database built in SQL, and with an unknown token of each shape (`authd_…` and 40
hex: a cache miss and one indexed lookup each, answered 401); alternating wrk rounds
(BENCH_ROUNDS, 3 by default) at c=16, medians. On a fresh SQLite database, or PostgreSQL with
AUTHD_BENCH_POSTGRES_URL (a database of its own, dropped and made again).

Targets: /token/verify/ ÷ floor at least 0.70 (issue 15); guarded ÷ floor with scoped tokens
shown in the same run; the DRF key costs the guard nothing measurable (issue 16): DRF key ÷
login token ≈ 1, per round and in the medians.

    cargo build --release --bins
    python3 bench/verify.py
"""

import base64
import importlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, Server, post, wrk  # noqa: E402
from authorization import database_url  # noqa: E402

# bench/import.py builds Django's tables; `import` is a keyword, hence importlib.
django_source = importlib.import_module("import")

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


def import_bench_user(server, directory, key):
    """The user `bench` (id 1, PASSWORD as PBKDF2-SHA256) with the DRF key `key`, imported by
    `authd import-django` from a Django SQLite database built in SQL."""
    source = django_source.Sqlite(os.path.join(directory, "django.sqlite3"))
    hashed = django_source.pbkdf2("pbkdf2_sha256", "sha256", PASSWORD, django_source.salt(0))
    source.execute(django_source.schema(source) + f"""
INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name,
                       email, is_staff, is_active, date_joined)
    VALUES (1, {django_source.literal(hashed)}, NULL, 0, 'bench', '', '', '', 0, 1,
            '2024-01-01 00:00:00');
INSERT INTO authtoken_token ("key", created, user_id) VALUES ('{key}', '2024-01-01 00:00:00', 1);
""")
    summary = json.loads(server.command("import-django", "--from", source.url, "--json"))
    if (summary["users"]["imported"], summary["tokens"]["imported"]) != (1, 1):
        raise SystemExit(f"import-django: {summary}")


def status_of(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, None


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release --bins")
    with tempfile.TemporaryDirectory() as directory:
        server = Server(database_url(directory, "verify"))
        try:
            drf_key = secrets.token_hex(20)
            import_bench_user(server, directory, drf_key)
            put_in_groups(server)
            token = post(f"{server.base}/token/login/",
                         {"username": "bench", "password": PASSWORD})["auth_token"]
            authorization = ("-H", f"Authorization: Token {token}")
            scoped = ("-H", f"Authorization: Bearer {scoped_access_token(server)}")
            key = post(f"{server.base}/token/keys/",
                       {"name": "bench", "scope": SCOPE, "current_password": PASSWORD}, token)["key"]
            api_key = ("-H", f"X-API-Key: {key}")
            unknown_token = "authd_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            unknown_drf_key = secrets.token_hex(20)
            me = f"{server.base}/users/me/"
            for credential, expected in ((token, 200), (drf_key, 200), (unknown_token, 401),
                                         (unknown_drf_key, 401)):
                status, body = status_of(me, credential)
                if status != expected or (expected == 200 and body["username"] != "bench"):
                    raise SystemExit(f"/users/me/: {status} {body}, expected {expected}")
            measured = {
                "verify": (f"{server.base}/token/verify/", authorization),
                "verify ?permission=": (f"{server.base}/token/verify/?permission=shop.perm_15", authorization),
                "guarded /users/me/": (f"{server.base}/users/me/", authorization),
                "guarded, DRF key": (me, ("-H", f"Authorization: Token {drf_key}")),
                "verify, scoped token": (f"{server.base}/token/verify/", scoped),
                "guarded, scoped token": (f"{server.base}/users/me/", scoped),
                "verify, API key": (f"{server.base}/token/verify/", api_key),
                "guarded, API key": (f"{server.base}/users/me/", api_key),
            }
            # Answered 401: each request misses the cache and looks the digest up once.
            refused = {
                "guarded, unknown authd_ token (401)": (me, ("-H", f"Authorization: Token {unknown_token}")),
                "guarded, unknown 40-hex key (401)": (me, ("-H", f"Authorization: Token {unknown_drf_key}")),
            }
            rounds = {"floor": [], **{name: [] for name in (*measured, *refused)}}
            for _ in range(ROUNDS):
                rounds["floor"].append(wrk(f"{server.base}/nothing/", CONNECTIONS)["rps"])
                for name, (url, extra) in measured.items():
                    answered = wrk(url, CONNECTIONS, extra)
                    if answered["non2xx"]:
                        raise SystemExit(f"{name}: {answered['non2xx']} requests failed")
                    rounds[name].append(answered["rps"])
                for name, (url, extra) in refused.items():
                    answered = wrk(url, CONNECTIONS, extra)
                    if answered["ok_rps"]:
                        raise SystemExit(f"{name}: some requests were answered 2xx")
                    rounds[name].append(answered["rps"])
        finally:
            server.stop()

    floor = statistics.median(rounds["floor"])
    print(f"| | req/s | ÷ floor |\n|---|---:|---:|\n| floor (JSON 404) | {floor:.0f} | 1.00 |")
    for name in (*measured, *refused):
        rps = statistics.median(rounds[name])
        print(f"| {name} | {rps:.0f} | {rps / floor:.2f} |")
    print()
    for shape, other in (("guarded, DRF key", "guarded /users/me/"),
                         ("guarded, unknown 40-hex key (401)", "guarded, unknown authd_ token (401)")):
        medians = statistics.median(rounds[shape]) / statistics.median(rounds[other])
        per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(rounds[shape], rounds[other]))
        print(f"{shape} ÷ {other}: {medians:.2f} (medians); per round {per_round}")


if __name__ == "__main__":
    main()
