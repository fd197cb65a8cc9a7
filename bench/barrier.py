#!/usr/bin/env python3
"""What the cache barrier costs and buys: three instances on one PostgreSQL database, each
holding a token in memory (one request each), a logout through one of them, then at once one
request to each of the other two. Reports the logout's latency and how many of those next
requests were still answered 200 (a stale cache), for authd and for a baseline binary that
does not wait (the previous release, or this one built without the wait). Run by hand, never
in CI:

    AUTHD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    AUTHD_BENCH_BASELINE_BINARY=/path/to/authd-without-the-wait python3 bench/barrier.py

`AUTHD_BENCH_BINARY` names the binary measured (the release build by default). Figures are only
comparable within one run.
"""

import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, Server, post  # noqa: E402

INSTANCES = 3
LOGOUTS = 60
ROUNDS = 3
SETTINGS = {"AUTHD_THROTTLE_ANON": "off", "AUTHD_THROTTLE_USER": "off"}


def psql(url, sql):
    subprocess.run(["psql", url, "-qv", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def status(method, url, token):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


class Cluster:
    def __init__(self, admin, binary):
        self.admin = admin
        self.name = f"authd_bench_{uuid.uuid4().hex[:12]}"
        psql(admin, f'CREATE DATABASE "{self.name}"')
        url = admin.rsplit("/", 1)[0] + f"/{self.name}"
        self.servers = [Server(url, binary=binary, **SETTINGS) for _ in range(INSTANCES)]
        post(f"{self.servers[0].base}/users/", {"username": "bench", "password": PASSWORD})

    def round(self):
        """LOGOUTS logouts: their latencies (ms), and the next requests answered 200."""
        latencies, stale = [], 0
        for n in range(LOGOUTS):
            through = self.servers[n % INSTANCES]
            token = post(f"{through.base}/token/login/", {"username": "bench", "password": PASSWORD})["auth_token"]
            for server in self.servers:
                assert status("GET", f"{server.base}/users/me/", token) == 200
            started = time.perf_counter()
            assert status("POST", f"{through.base}/token/logout/", token) == 204
            latencies.append((time.perf_counter() - started) * 1000)
            for server in self.servers:
                if server is not through and status("GET", f"{server.base}/users/me/", token) == 200:
                    stale += 1
        return latencies, stale

    def stop(self):
        for server in self.servers:
            server.stop()
        psql(self.admin, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def main():
    admin = os.environ.get("AUTHD_BENCH_POSTGRES_URL")
    baseline = os.environ.get("AUTHD_BENCH_BASELINE_BINARY")
    binary = os.environ.get("AUTHD_BENCH_BINARY", BINARY)
    if not admin or not baseline:
        raise SystemExit("set AUTHD_BENCH_POSTGRES_URL and AUTHD_BENCH_BASELINE_BINARY")
    variants = {"barrier": binary, "no wait (baseline)": baseline}
    clusters = {name: Cluster(admin, path) for name, path in variants.items()}
    results = {name: {"latencies": [], "stale": 0, "medians": []} for name in variants}
    try:
        for _ in range(ROUNDS):
            for name, cluster in clusters.items():
                latencies, stale = cluster.round()
                results[name]["latencies"] += latencies
                results[name]["stale"] += stale
                results[name]["medians"].append(statistics.median(latencies))
    finally:
        for cluster in clusters.values():
            cluster.stop()
    total = ROUNDS * LOGOUTS * (INSTANCES - 1)
    print(f"\n{INSTANCES} instances, {ROUNDS} alternating rounds of {LOGOUTS} logouts each\n")
    print("| binary | logout p50 ms | logout p99 ms | round medians ms | next request answered 200 |")
    print("|---|---:|---:|---|---:|")
    for name, r in results.items():
        ordered = sorted(r["latencies"])
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        medians = ", ".join(f"{m:.1f}" for m in r["medians"])
        print(f"| {name} | {statistics.median(ordered):.1f} | {p99:.1f} | {medians} | {r['stale']} of {total} |")


if __name__ == "__main__":
    sys.exit(main())
