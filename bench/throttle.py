#!/usr/bin/env python3
"""Guarded throughput with DRF's user throttle on, against the same request with it off and
against authd's JSON 404 (the floor): three servers on one database, alternating wrk rounds at
c=16, medians. The rate is high enough never to refuse, so every request pays for the check.
Run by hand, never in CI:

    cargo build --release --bins --examples
    python3 bench/throttle.py                  # SQLite; the Redis row needs AUTHD_BENCH_REDIS_URL
    AUTHD_BENCH_REDIS_URL=redis://127.0.0.1:6379 python3 bench/throttle.py
"""

import os
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import PASSWORD, Server, post, wrk  # noqa: E402

ROUNDS = 3
RATE = "100000000/h"


def main():
    redis_url = os.environ.get("AUTHD_BENCH_REDIS_URL")
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite://{directory}/bench.sqlite3?mode=rwc"
        servers = {"throttle off": Server(database_url)}
        try:
            post(f"{servers['throttle off'].base}/users/", {"username": "bench", "password": PASSWORD})
            servers["user throttle (memory)"] = Server(database_url, AUTHD_THROTTLE_USER=RATE)
            if redis_url:
                servers["user throttle (Redis)"] = Server(
                    database_url, AUTHD_THROTTLE_USER=RATE, AUTHD_THROTTLE_REDIS_URL=redis_url,
                    AUTHD_THROTTLE_REDIS_PREFIX=f"authd-bench-{uuid.uuid4().hex[:8]}:")
            tokens = {
                name: post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})["auth_token"]
                for name, server in servers.items()
            }
            rounds = {"floor (JSON 404)": [], **{name: [] for name in servers}}
            non2xx = 0
            for _ in range(ROUNDS):
                rounds["floor (JSON 404)"].append(wrk(f"{servers['throttle off'].base}/nothing/", 16)["rps"])
                for name, server in servers.items():
                    answered = wrk(f"{server.base}/users/me/", 16, ("-H", f"Authorization: Token {tokens[name]}"))
                    non2xx += answered["non2xx"] or 0
                    rounds[name].append(answered["rps"])
            if non2xx:
                raise SystemExit(f"{non2xx} guarded requests were not answered 200")
            floor = statistics.median(rounds["floor (JSON 404)"])
            print(f"{'':28}{'req/s':>10}{'÷ floor':>10}")
            for name, values in rounds.items():
                median = statistics.median(values)
                print(f"{name:28}{median:10.0f}{median / floor:10.2f}")
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
