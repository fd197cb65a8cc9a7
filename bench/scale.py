#!/usr/bin/env python3
"""A million users: guarded GET /users/me/ rotating over 1,000 and over 100,000 distinct tokens,
against a database of 1,000,000 users each holding one live token ("1M users") and one of 1,000
users holding 100 tokens each ("1k users"), both served at once and measured in alternating
rounds (medians of BENCH_ROUNDS, default 5: single rounds on two shared cores swing by 30 %).
Reports throughput, p50 and p99, the token cache's hit ratio in each round (from /metrics),
and the memory the cache takes per token once the 100,000-token rotation is held. Users,
sessions and token digests are seeded in SQL into databases `authd serve` migrated. Run by hand,
never in CI:

    cargo build --release --bins
    python3 bench/scale.py                          # SQLite
    AUTHD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres python3 bench/scale.py

Target: p99 at 1M users ≤ 1.2 × p99 at 1k users for the same rotation. Before the rounds, each
server rotates over its 100,000 tokens until one run finds them all cached; the first of those
runs, nearly all misses, is printed as the cold cache's figure (the miss path).
"""

import datetime
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lookups import digest, psql, rotation_script  # noqa: E402
from run import BINARY, Server, free_port, wrk  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNECTIONS = 16
# name → (users, tokens); token i belongs to user i % users, each in a session of its own.
SIZES = {"1M users": (1_000_000, 1_000_000), "1k users": (1_000, 100_000)}
ROTATIONS = (1_000, 100_000)
# Runs of the widest rotation at most before the rounds, to fill the cache.
WARM_UP_RUNS = 12


def seed_sqlite(path, users, tokens):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    db = sqlite3.connect(path, timeout=60)
    db.create_function("bench_digest", 1, digest, deterministic=True)
    numbers = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) "
    with db:
        db.execute(numbers.format(users - 1) +
                   "INSERT INTO auth_user (id, username, username_canonical, password, date_joined) "
                   "SELECT i + 1, 'bench' || i, 'bench' || i, '!', ? FROM n", (now,))
        db.execute(numbers.format(tokens - 1) +
                   "INSERT INTO auth_session (id, public_id, user_id, kind, name, created) "
                   f"SELECT i + 1, 'bench' || i, i % {users} + 1, 'token', 'bench', ? FROM n", (now,))
        db.execute(numbers.format(tokens - 1) +
                   "INSERT INTO auth_token (digest, user_id, created, session_id, kind, expiry_pending, superseded) "
                   f"SELECT bench_digest(i), i % {users} + 1, ?, i + 1, 'token', 0, 0 FROM n", (now,))
    db.execute("ANALYZE")
    db.close()


def seed_postgres(url, users, tokens):
    psql(url, f"""
        INSERT INTO auth_user (id, username, username_canonical, password, date_joined)
            SELECT i + 1, 'bench' || i, 'bench' || i, '!', now() FROM generate_series(0, {users - 1}) AS i;
        INSERT INTO auth_session (id, public_id, user_id, kind, name, created)
            SELECT i + 1, 'bench' || i, i % {users} + 1, 'token', 'bench', now()
            FROM generate_series(0, {tokens - 1}) AS i;
        INSERT INTO auth_token (digest, user_id, created, session_id, kind, expiry_pending, superseded)
            SELECT encode(sha256(convert_to('authd_bench_' || lpad(i::text, 37, '0'), 'UTF8')), 'hex'),
                   i % {users} + 1, now(), i + 1, 'token', FALSE, FALSE
            FROM generate_series(0, {tokens - 1}) AS i;
        ANALYZE;""")


def scrape(metrics_base):
    """The cache's hits, misses and entries from /metrics."""
    with urllib.request.urlopen(f"{metrics_base}/metrics", timeout=10) as reply:
        text = reply.read().decode()

    def value(pattern):
        found = re.search(rf"^{pattern} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    return {
        "hit": value(r'authd_token_cache_requests_total\{result="hit"\}'),
        "miss": value(r'authd_token_cache_requests_total\{result="miss"\}'),
        "entries": value("authd_token_cache_entries"),
    }


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1))


def rotate(server, metrics_base, size, rotation, workdir):
    """One wrk run rotating over `rotation` of the size's tokens, with the cache's hit ratio."""
    tokens = SIZES[size][1]
    script = rotation_script(f"{workdir}/r{rotation}-{size[:2]}.lua", rotation, tokens // rotation)
    before = scrape(metrics_base)
    answered = wrk(f"{server.base}/users/me/", CONNECTIONS, script)
    after = scrape(metrics_base)
    if answered["non2xx"]:
        raise SystemExit(f"{size} over {rotation:,}: {answered['non2xx']} requests not answered 200")
    hits, misses = after["hit"] - before["hit"], after["miss"] - before["miss"]
    answered["hit_ratio"] = hits / (hits + misses) if hits + misses else 0.0
    return answered


def warm_up(servers, metrics, workdir):
    """Rotates over the most tokens on each server until a run finds them all cached: what a
    cold cache costs (its first run, nearly all misses: the miss path), then the rounds measure
    the cache at work. Returns each size's first run."""
    rotation = max(ROTATIONS)
    cold = {}
    for size, server in servers.items():
        for run in range(WARM_UP_RUNS):
            answered = rotate(server, metrics[size], size, rotation, workdir)
            cold.setdefault(size, answered)
            print(f"  warm-up {size:>8} run {run + 1}: {answered['rps']:>8.0f} req/s, "
                  f"p99 {answered['p99']:.2f} ms, hits {answered['hit_ratio']:.1%}", flush=True)
            if answered["hit_ratio"] >= 0.99:
                break
    return cold


def measure(label, urls, seed):
    """Starts a server per size, seeds it, and runs the alternating rounds."""
    servers, metrics = {}, {}
    rows = {(size, rotation): [] for size in SIZES for rotation in ROTATIONS}
    memory = {}
    try:
        for size, (users, tokens) in SIZES.items():
            port = free_port()
            servers[size] = Server(urls[size], AUTHD_METRICS_BIND=f"127.0.0.1:{port}")
            metrics[size] = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            seed(urls[size], users, tokens)
            print(f"{label}, {size}: seeded {users:,} users and {tokens:,} tokens in "
                  f"{time.monotonic() - started:.0f} s", flush=True)
            memory[size] = {"idle": resident_kib(servers[size].pid)}
        with tempfile.TemporaryDirectory() as workdir:
            cold = warm_up(servers, metrics, workdir)
            for round_ in range(ROUNDS):
                order = list(SIZES) if round_ % 2 == 0 else list(reversed(SIZES))
                for rotation in ROTATIONS:
                    for size in order:
                        answered = rotate(servers[size], metrics[size], size, rotation, workdir)
                        rows[(size, rotation)].append(answered)
                        print(f"  round {round_ + 1} {size:>8} over {rotation:>7,}: {answered['rps']:>8.0f} req/s, "
                              f"p99 {answered['p99']:.2f} ms, hits {answered['hit_ratio']:.1%}", flush=True)
            for size in SIZES:
                held = scrape(metrics[size])["entries"]
                memory[size].update(held=held, full=resident_kib(servers[size].pid))
    finally:
        for server in servers.values():
            server.stop()
    return rows, memory, cold


def report(label, rows, memory, cold):
    print(f"\n### {label}: medians of {ROUNDS} alternating rounds, c={CONNECTIONS}\n")
    print("| rotation | users | req/s | p50 ms | p99 ms | hit ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for rotation in ROTATIONS:
        for size in SIZES:
            runs = rows[(size, rotation)]
            median = {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50", "p99", "hit_ratio")}
            print(f"| {rotation:,} | {size} | {median['rps']:.0f} | {median['p50']:.2f} | {median['p99']:.2f} | "
                  f"{median['hit_ratio']:.1%} |")
    print()
    for size, first in cold.items():
        print(f"- cold cache, {size} over {max(ROTATIONS):,}: {first['rps']:.0f} req/s, p99 {first['p99']:.2f} ms, "
              f"hits {first['hit_ratio']:.1%}")
    for rotation in ROTATIONS:
        big = statistics.median(r["p99"] for r in rows[("1M users", rotation)])
        small = statistics.median(r["p99"] for r in rows[("1k users", rotation)])
        big_rps = statistics.median(r["rps"] for r in rows[("1M users", rotation)])
        small_rps = statistics.median(r["rps"] for r in rows[("1k users", rotation)])
        verdict = "met" if big <= 1.2 * small else "NOT met"
        print(f"- over {rotation:,} tokens: p99 1M ÷ 1k = {big / small:.2f} (target ≤ 1.2: {verdict}); "
              f"throughput 1M ÷ 1k = {big_rps / small_rps:.2f}")
    for size, seen in memory.items():
        grown = seen["full"] - seen["idle"]
        per_token = grown * 1024 / seen["held"] if seen["held"] else 0
        print(f"- {size}: RSS {seen['idle'] / 1024:.0f} MiB seeded and idle, {seen['full'] / 1024:.0f} MiB holding "
              f"{seen['held']:,.0f} cached tokens: {per_token:,.0f} bytes per cached token")


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release --bins")
    with tempfile.TemporaryDirectory() as directory:
        paths = {size: f"{directory}/{size[:2]}.sqlite3" for size in SIZES}
        urls = {size: f"sqlite://{path}?mode=rwc" for size, path in paths.items()}
        by_url = {url: paths[size] for size, url in urls.items()}
        report("SQLite", *measure("SQLite", urls, lambda url, users, tokens: seed_sqlite(by_url[url], users, tokens)))
    admin = os.environ.get("AUTHD_BENCH_POSTGRES_URL")
    if not admin:
        print("\n(AUTHD_BENCH_POSTGRES_URL not set: PostgreSQL skipped)")
        return
    names = {size: f"authd_bench_{uuid.uuid4().hex[:12]}" for size in SIZES}
    for name in names.values():
        psql(admin, f'CREATE DATABASE "{name}"')
    try:
        urls = {size: admin.rsplit("/", 1)[0] + f"/{name}" for size, name in names.items()}
        report("PostgreSQL", *measure("PostgreSQL", urls, seed_postgres))
    finally:
        for name in names.values():
            psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
