#!/usr/bin/env python3
"""The serving path against the previous commit, in one run: the previous commit is built in a
git worktree, both binaries serve side by side (each on a fresh SQLite database), and the same
measurements alternate between them:

- guarded GET /users/me/ ÷ authd's JSON 404 (the unauthenticated floor), three alternating wrk
  rounds at c=16, medians (target: no worse than 0.70);
- 40 simultaneous sign-ups at the default Argon2 cost and queue settings: their statuses;
- 300 concurrent logins with 1.6 MB bodies, from one address and from 300 loopback addresses,
  each on a fresh server: their statuses and the server's peak RSS (VmHWM).

Run by hand on a quiet machine, never in CI:

    cargo build --release --bins
    python3 bench/serving.py                          # against HEAD~1
    AUTHD_BENCH_BASELINE=<commit> python3 bench/serving.py

The baseline is built under target/bench-baseline, so a second run only rebuilds what changed.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, ROOT, Server, flood, peak_memory_kib, post, wrk  # noqa: E402

ROUNDS = 3
BURST = 40
FLOOD_BODY_BYTES = 1_600_000


def build_baseline(revision):
    """The release binary of `revision`, built in a worktree (always at the same path, so that
    cargo reuses what it built before)."""
    target = os.path.join(ROOT, "target", "bench-baseline")
    worktree = os.path.join(target, "worktree")
    subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", worktree], capture_output=True)
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", worktree, revision],
                   check=True, capture_output=True)
    try:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "authd"], cwd=worktree,
                       env=dict(os.environ, CARGO_TARGET_DIR=target), check=True)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", worktree], check=True)
    described = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s", revision],
                               check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(target, "release", "authd"), described


def burst(server, size=BURST):
    """`size` sign-ups at once; how many got each status."""
    statuses = {}
    lock = threading.Lock()
    start = threading.Barrier(size)

    def one(index):
        request = urllib.request.Request(
            f"{server.base}/users/",
            data=json.dumps({"username": f"burst{index}", "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status = response.status
        except urllib.error.HTTPError as err:
            status = err.code
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=one, args=(index,)) for index in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return dict(sorted(statuses.items()))


def fresh(binary, directory, name):
    return Server(f"sqlite://{directory}/{name}.sqlite3?mode=rwc", binary=binary)


def flood_peak(binary, directory, name, hosts):
    server = fresh(binary, directory, name)
    try:
        post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
        before = peak_memory_kib(server.pid)
        statuses = flood(server.port, size=FLOOD_BODY_BYTES, hosts=hosts)
        after = peak_memory_kib(server.pid)
        login = post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})
    finally:
        server.stop()
    return statuses, before, after, bool(login.get("auth_token"))


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release --bins")
    baseline, described = build_baseline(os.environ.get("AUTHD_BENCH_BASELINE", "HEAD~1"))
    binaries = {"before": baseline, "after": BINARY}
    print(f"before: {described}\nafter: the working tree\n")
    with tempfile.TemporaryDirectory() as directory:
        servers = {label: fresh(binary, directory, label) for label, binary in binaries.items()}
        try:
            tokens = {}
            for label, server in servers.items():
                post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
                tokens[label] = post(f"{server.base}/token/login/",
                                     {"username": "bench", "password": PASSWORD})["auth_token"]
            rounds = {label: {"floor": [], "guarded": []} for label in servers}
            for _ in range(ROUNDS):
                for label, server in servers.items():
                    rounds[label]["floor"].append(wrk(f"{server.base}/nothing/", 16)["rps"])
                    guarded = wrk(f"{server.base}/users/me/", 16,
                                  ("-H", f"Authorization: Token {tokens[label]}"))
                    if guarded["non2xx"]:
                        raise SystemExit(f"{label}: {guarded['non2xx']} guarded requests failed")
                    rounds[label]["guarded"].append(guarded["rps"])
            bursts = {label: burst(server) for label, server in servers.items()}
        finally:
            for server in servers.values():
                server.stop()

        print("| | floor req/s | guarded req/s | guarded ÷ floor | 40 sign-ups at once |")
        print("|---|---:|---:|---:|---|")
        for label in binaries:
            floor = statistics.median(rounds[label]["floor"])
            guarded = statistics.median(rounds[label]["guarded"])
            print(f"| {label} | {floor:.0f} | {guarded:.0f} | {guarded / floor:.2f} | {bursts[label]} |")
        print()
        print("| | flood from | answers | peak RSS before | after | a login afterwards |")
        print("|---|---|---|---:|---:|---|")
        for hosts in (1, 300):
            for label, binary in binaries.items():
                statuses, before, after, works = flood_peak(binary, directory, f"{label}-flood-{hosts}", hosts)
                print(f"| {label} | {hosts} address{'es' if hosts > 1 else ''} | {dict(sorted(statuses.items()))} | "
                      f"{before / 1024:.0f} MiB | {after / 1024:.0f} MiB | {'works' if works else 'FAILED'} |")


if __name__ == "__main__":
    sys.exit(main())
