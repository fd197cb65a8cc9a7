#!/usr/bin/env python3
"""Guarded requests and introspection with permissions in the cached principal, against the
release before groups and permissions, in one run: the baseline is built in a git worktree,
both binaries serve side by side (each on a fresh SQLite database, or on its own PostgreSQL
database with AUTHD_BENCH_POSTGRES_URL), and the same measurements alternate between them (BENCH_ROUNDS rounds, 5 by default):

- authd's JSON 404 (the unauthenticated floor), guarded GET /users/me/ and an introspection
  by a registered client, alternating wrk rounds at c=16, medians;
- on the new binary the user is in two groups holding 20 permissions and holds 5 of their own
  (the principal cached for the token carries 25 permissions and 2 groups), and introspection
  lists them; a second user there holds nothing (the row "after, no grants").

Targets (issue 14): guarded ÷ floor and introspection ÷ floor within 0.02 of the baseline's,
and never below 0.70 and 0.50.

    cargo build --release --bins
    python3 bench/authorization.py                     # against AUTHD_BENCH_BASELINE (deda015)
"""

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, Server, form_script, post, wrk  # noqa: E402
from serving import build_baseline  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
# The last commit before groups and permissions.
BASELINE = os.environ.get("AUTHD_BENCH_BASELINE", "deda015")


def database_url(directory, name):
    postgres = os.environ.get("AUTHD_BENCH_POSTGRES_URL")
    if not postgres:
        return f"sqlite://{directory}/{name}.sqlite3?mode=rwc"
    database = f"authd_bench_authz_{name}"
    admin = postgres.rsplit("/", 1)[0] + "/postgres"
    for statement in (f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f'CREATE DATABASE "{database}"'):
        subprocess.run(["psql", admin, "-qc", statement], check=True, capture_output=True)
    return postgres.rsplit("/", 1)[0] + f"/{database}"


def grant_permissions(server):
    """Two groups of ten permissions each, the user in both, five permissions of their own."""
    for index in range(25):
        server.command("permission", "create", f"shop.perm_{index:02}", "--name", f"Permission {index}")
    for group, first in (("buyers", 0), ("sellers", 10)):
        names = [f"shop.perm_{index:02}" for index in range(first, first + 10)]
        args = ["group", "create", group]
        for name in names:
            args += ["--permission", name]
        server.command(*args)
        server.command("user", "add-to-group", "bench", group)
    for index in range(20, 25):
        server.command("user", "grant", "bench", f"shop.perm_{index:02}")


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release --bins")
    baseline, described = build_baseline(BASELINE)
    binaries = {"before": baseline, "after": BINARY}
    print(f"before: {described}\nafter: the working tree\n")
    with tempfile.TemporaryDirectory() as directory:
        servers = {label: Server(database_url(directory, label), binary=binary)
                   for label, binary in binaries.items()}
        try:
            scripts, tokens, basics = {}, {}, {}
            for label, server in servers.items():
                post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
                if label == "after":
                    grant_permissions(server)
                tokens[label] = post(f"{server.base}/token/login/",
                                     {"username": "bench", "password": PASSWORD})["auth_token"]
                client = json.loads(server.command("client", "create", "bench resource server"))
                basics[label] = base64.b64encode(
                    f"{client['client_id']}:{client['client_secret']}".encode()).decode()
                scripts[label] = form_script(os.path.join(directory, f"{label}.lua"), f"token={tokens[label]}",
                                             {"Authorization": f"Basic {basics[label]}"})
            introspected = subprocess.run(
                ["curl", "-s", "-X", "POST", f"{servers['after'].base}/oauth/introspect",
                 "-H", f"Authorization: Basic {basics['after']}", "-d", f"token={tokens['after']}"],
                capture_output=True, text=True).stdout
            post(f"{servers['after'].base}/users/", {"username": "plain", "password": PASSWORD})
            plain = post(f"{servers['after'].base}/token/login/",
                         {"username": "plain", "password": PASSWORD})["auth_token"]
            scripts["after, no grants"] = form_script(
                os.path.join(directory, "plain.lua"), f"token={plain}",
                {"Authorization": f"Basic {basics['after']}"})
            rounds = {label: {"floor": [], "guarded": [], "introspect": []} for label in servers}
            rounds["after, no grants"] = {"introspect": []}
            for _ in range(ROUNDS):
                for label, server in servers.items():
                    rounds[label]["floor"].append(wrk(f"{server.base}/nothing/", 16)["rps"])
                    for name, answered in (
                        ("guarded", wrk(f"{server.base}/users/me/", 16,
                                        ("-H", f"Authorization: Token {tokens[label]}"))),
                        ("introspect", wrk(f"{server.base}/oauth/introspect", 16, scripts[label])),
                    ):
                        if answered["non2xx"]:
                            raise SystemExit(f"{label} {name}: {answered['non2xx']} requests failed")
                        rounds[label][name].append(answered["rps"])
                    if label == "after":
                        answered = wrk(f"{server.base}/oauth/introspect", 16, scripts["after, no grants"])
                        rounds["after, no grants"]["introspect"].append(answered["rps"])
        finally:
            for server in servers.values():
                server.stop()

    print(f"introspection on the new binary: {introspected}\n")
    print("| | floor req/s | guarded req/s | guarded ÷ floor | introspection req/s | introspection ÷ floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in binaries:
        floor = statistics.median(rounds[label]["floor"])
        guarded = statistics.median(rounds[label]["guarded"])
        introspect = statistics.median(rounds[label]["introspect"])
        print(f"| {label} | {floor:.0f} | {guarded:.0f} | {guarded / floor:.2f} | "
              f"{introspect:.0f} | {introspect / floor:.2f} |")
    floor = statistics.median(rounds["after"]["floor"])
    bare = statistics.median(rounds["after, no grants"]["introspect"])
    print(f"| after, no grants | | | | {bare:.0f} | {bare / floor:.2f} |")


if __name__ == "__main__":
    main()
