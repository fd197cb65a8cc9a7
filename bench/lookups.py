#!/usr/bin/env python3
"""Token lookups at size: guarded GET /users/me/ rotating over 10,000 distinct tokens in a table
of 100,000, with the token cache off so that every request is one lookup by digest, against the
same request with one token and against authd's JSON 404 (the floor). On PostgreSQL it also runs
the rotation with `auth_token.digest` turned back into the previous release's `character(64)`,
whose comparison with the bound `text` digest no index can serve. Run by hand, never in CI:

    cargo build --release --bins
    python3 bench/lookups.py                   # SQLite; add AUTHD_BENCH_POSTGRES_URL=postgres://… for PostgreSQL

Figures are only comparable within one run: report ratios. wrk shares the cores with the server.
"""

import datetime
import hashlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, Server, post, wrk  # noqa: E402

TABLE = 100_000
DISTINCT = 10_000
ROUNDS = 3
# Every request asks the database (AUTHD_TOKEN_CACHE_SECONDS=0); no idle limit, so no last-use
# writes either: the lookup is what is measured.
SETTINGS = {"AUTHD_TOKEN_CACHE_SECONDS": "0", "AUTHD_TOKEN_IDLE_SECONDS": "0"}


def secret(index):
    """The benchmark's tokens: authd's prefix and a fixed width, so Lua can spell them too."""
    return f"authd_bench_{index:037d}"


def digest(index):
    return hashlib.sha256(secret(index).encode()).hexdigest()


def rotation_script(path, distinct=DISTINCT, step=TABLE // DISTINCT):
    """A wrk script that sends `distinct` tokens spread evenly over the table (every `step`th),
    in turn, each thread from its own random starting point."""
    with open(path, "w") as script:
        script.write(f"""
local distinct, step, next = {distinct}, {step}, 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
  next = math.random(distinct) - 1
end
function request()
  next = (next + 1) % distinct
  local token = string.format("authd_bench_%037d", next * step)
  return wrk.format("GET", nil, {{["Authorization"] = "Token " .. token}})
end
""")
    return ("-s", path)


def fill_sqlite(path, user_id):
    """TABLE tokens, each in a session of its own, as TABLE logins would leave them."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    db = sqlite3.connect(path, timeout=30)
    with db:
        db.executemany(
            "INSERT INTO auth_session (public_id, user_id, kind, name, created) "
            "VALUES (?, ?, 'token', 'bench', ?)",
            ((f"bench{i}", user_id, now) for i in range(TABLE)),
        )
        sessions = dict(db.execute("SELECT public_id, id FROM auth_session WHERE public_id LIKE 'bench%'"))
        db.executemany(
            "INSERT INTO auth_token (digest, user_id, created, session_id, kind, expiry_pending, superseded) "
            "VALUES (?, ?, ?, ?, 'token', 0, 0)",
            ((digest(i), user_id, now, sessions[f"bench{i}"]) for i in range(TABLE)),
        )
    db.execute("ANALYZE")
    db.close()


def psql(url, sql):
    subprocess.run(["psql", url, "-qv", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def fill_postgres(url, user_id):
    psql(url, f"""
        INSERT INTO auth_session (public_id, user_id, kind, name, created)
            SELECT 'bench' || i, {user_id}, 'token', 'bench', now() FROM generate_series(0, {TABLE - 1}) AS i;
        INSERT INTO auth_token (digest, user_id, created, session_id, kind, expiry_pending, superseded)
            SELECT encode(sha256(convert_to('authd_bench_' || lpad(substr(s.public_id, 6), 37, '0'), 'UTF8')), 'hex'),
                   {user_id}, now(), s.id, 'token', FALSE, FALSE
            FROM auth_session s WHERE s.public_id LIKE 'bench%';
        ANALYZE;""")


def measure(database_url, fill, regress=None):
    """Medians of ROUNDS alternating rounds of each scenario, at c=16; `regress` (PostgreSQL)
    turns the digest column back into the previous release's type for one more scenario."""
    with tempfile.TemporaryDirectory() as workdir:
        server = Server(database_url, **SETTINGS)
        try:
            created = post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
            one = post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})["auth_token"]
            fill(created["id"])
            rotation = rotation_script(os.path.join(workdir, "rotation.lua"))
            scenarios = {
                "floor (JSON 404)": lambda: wrk(f"{server.base}/nothing/", 16),
                "one token": lambda: wrk(f"{server.base}/users/me/", 16, ("-H", f"Authorization: Token {one}")),
                f"{DISTINCT:,} tokens of {TABLE:,}": lambda: wrk(f"{server.base}/users/me/", 16, rotation),
            }
            results = {name: [] for name in scenarios}
            for _ in range(ROUNDS):
                for name, run in scenarios.items():
                    answered = run()
                    if name != "floor (JSON 404)" and answered["non2xx"]:
                        raise SystemExit(f"{name}: {answered['non2xx']} requests were not answered 200")
                    results[name].append(answered)
        finally:
            server.stop()
        if regress:
            regress()
            server = Server(database_url, **SETTINGS)
            try:
                name = f"{DISTINCT:,} of {TABLE:,}, digest character(64)"
                results[name] = []
                for _ in range(ROUNDS):
                    results[name].append(wrk(f"{server.base}/users/me/", 16, rotation))
            finally:
                server.stop()
    return {
        name: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50", "p99", "non2xx")}
        for name, runs in results.items()
    }


def report(label, rows):
    floor = rows["floor (JSON 404)"]["rps"]
    one = rows["one token"]["rps"]
    print(f"\n### {label}\n")
    print("| scenario | req/s | p50 ms | p99 ms | ÷ floor | ÷ one token |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps'] / floor:.2f} | {r['rps'] / one:.2f} |")


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release --bins")
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/bench.sqlite3"
        report("SQLite", measure(f"sqlite://{path}?mode=rwc", lambda user: fill_sqlite(path, user)))
    admin = os.environ.get("AUTHD_BENCH_POSTGRES_URL")
    if not admin:
        print("\n(AUTHD_BENCH_POSTGRES_URL not set: PostgreSQL skipped)")
        return
    name = f"authd_bench_{uuid.uuid4().hex[:12]}"
    psql(admin, f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        regress = lambda: psql(url, "ALTER TABLE auth_token ALTER COLUMN digest TYPE character(64); ANALYZE auth_token;")
        report("PostgreSQL", measure(url, lambda user: fill_postgres(url, user), regress))
    finally:
        psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
