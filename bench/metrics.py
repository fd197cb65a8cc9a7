#!/usr/bin/env python3
"""What Prometheus metrics cost on the serving path, in one run: two release servers side by
side on fresh SQLite databases, one with AUTHD_METRICS_BIND (and a scrape every second, as a
Prometheus would) and one without, and alternating wrk rounds at c=16 on each:

- the floor: GET /healthz (no database, no guard);
- guarded GET /users/me/ (the token guard, answered from its cache).

Reports guarded ÷ floor with metrics on and off (medians of the rounds; target with metrics on:
at least 0.70), and each endpoint's throughput on ÷ off. Run by hand on a quiet machine:

    cargo build --release --bins
    python3 bench/metrics.py            # BENCH_ROUNDS (default 3), BENCH_DURATION (default 10s)
"""

import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import PASSWORD, Server, free_port, post, wrk  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = 16


def scraper(base, stop):
    """Scrapes `base`/metrics every second until `stop` is set; how many scrapes succeeded."""
    done = [0]

    def run():
        while not stop.is_set():
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
                reply.read()
            done[0] += 1
            stop.wait(1.0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def token_for(server):
    post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
    return post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})["auth_token"]


def floor_and_guarded(servers, tokens, label):
    """ROUNDS alternating rounds of the floor (`GET /healthz`) and guarded `GET /users/me/` on
    each server at c=CONNECTIONS; the medians by (server name, "floor" | "guarded")."""
    rounds = {(name, what): [] for name in servers for what in ("floor", "guarded")}
    for index in range(ROUNDS):
        # Alternate which server goes first, so neither always runs on a warmer machine.
        order = list(servers) if index % 2 == 0 else list(reversed(servers))
        for name in order:
            server = servers[name]
            auth = ("-H", f"Authorization: Token {tokens[name]}")
            floor = wrk(f"{server.base}/healthz", CONNECTIONS)
            guarded = wrk(f"{server.base}/users/me/", CONNECTIONS, auth)
            if floor["non2xx"] or guarded["non2xx"]:
                raise SystemExit(f"{label} {name}: non-2xx answers {floor} {guarded}")
            rounds[(name, "floor")].append(floor["rps"])
            rounds[(name, "guarded")].append(guarded["rps"])
            print(f"round {index + 1} {label} {name:5}: floor {floor['rps']:8.0f} req/s, "
                  f"guarded {guarded['rps']:8.0f} req/s", flush=True)
    return {key: statistics.median(values) for key, values in rounds.items()}


def main():
    with tempfile.TemporaryDirectory() as workdir:
        metrics_port = free_port()
        servers = {
            "on": Server(f"sqlite://{workdir}/on.sqlite3?mode=rwc",
                         AUTHD_METRICS_BIND=f"127.0.0.1:{metrics_port}"),
            "off": Server(f"sqlite://{workdir}/off.sqlite3?mode=rwc"),
        }
        stop = threading.Event()
        scraping, scrapes = scraper(f"http://127.0.0.1:{metrics_port}", stop)
        try:
            tokens = {name: token_for(server) for name, server in servers.items()}
            median = floor_and_guarded(servers, tokens, "metrics")
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as reply:
                exposition = reply.read().decode()
            counted = sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
                          if line.startswith('authd_http_requests_total{route="/users/me/"'))
        finally:
            stop.set()
            scraping.join(timeout=15)
            for server in servers.values():
                server.stop()
    print()
    print(f"rounds: {ROUNDS} × {os.environ.get('BENCH_DURATION', '10s')} at c={CONNECTIONS}, medians; "
          f"{scrapes[0]} scrapes; /users/me/ requests counted with metrics on: {counted:.0f}")
    for name in servers:
        ratio = median[(name, "guarded")] / median[(name, "floor")]
        print(f"metrics {name:3}: floor {median[(name, 'floor')]:8.0f} req/s, guarded "
              f"{median[(name, 'guarded')]:8.0f} req/s, guarded ÷ floor {ratio:.2f}")
    for what in ("floor", "guarded"):
        print(f"{what}: metrics on ÷ off {median[('on', what)] / median[('off', what)]:.2f}")
    on_ratio = median[("on", "guarded")] / median[("on", "floor")]
    print(f"target guarded ÷ floor with metrics on ≥ 0.70: {'met' if on_ratio >= 0.70 else 'NOT met'}")


if __name__ == "__main__":
    main()
