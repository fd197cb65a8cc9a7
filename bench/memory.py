#!/usr/bin/env python3
"""The server's resident memory under the loads issue 18 bounds: RSS must stay under 100 MB
(100,000,000 bytes) during

  1. guarded GET /users/me/ storms with a login storm beside it (default Argon2 cost and hash
     threads),
  2. 300 concurrent logins with 1.6 MB bodies (the defaults),
  3. the same flood with one hash thread (AUTHD_HASH_THREADS=1).

The floods come from one address, as bench/run.py's; a fourth row, outside the target, sends
the same flood from 300 loopback addresses, where AUTHD_BODY_MEMORY_BYTES (not one client's
eighth of it) bounds the bodies held at once.

Each scenario runs on a fresh server and a fresh SQLite database, so peaks do not mix. RSS is
sampled from /proc/<pid>/status (VmRSS) every 100 ms while the load runs; VmHWM (the kernel's
own peak, which no sample can miss) is read at the end. Run by hand, never in CI:

    cargo build --release --bins --examples
    python3 bench/memory.py                     # MEMORY_STORM_SECONDS=20 by default
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

from run import BINARY, PASSWORD, ROOT, Server, flood, parse_wrk, peak_memory_kib, post

LIMIT_BYTES = 100_000_000
FLOOD_BODY_BYTES = 1_600_000
STORM_SECONDS = int(os.environ.get("MEMORY_STORM_SECONDS", "20"))
SAMPLE_SECONDS = 0.1


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1))


class Sampler:
    """VmRSS of `pid` every 100 ms on a thread, until stopped; the highest sample."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = rss_kib(pid)
        self.samples = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, rss_kib(self.pid))
            self.samples += 1

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak


def storms(server):
    """Guarded requests (c=16) and logins (c=16) side by side for STORM_SECONDS."""
    token = post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})["auth_token"]
    duration = f"{STORM_SECONDS}s"
    guarded = subprocess.Popen(
        ["wrk", "-t", "1", "-c", "16", "-d", duration, "-H", f"Authorization: Token {token}",
         f"{server.base}/users/me/"],
        stdout=subprocess.PIPE, text=True,
    )
    logins = subprocess.Popen(
        ["wrk", "-t", "1", "-c", "16", "-d", duration, "-s", os.path.join(ROOT, "bench", "login.lua"),
         f"{server.base}/token/login/"],
        stdout=subprocess.PIPE, text=True,
    )
    guarded, logins = parse_wrk(guarded.communicate()[0]), parse_wrk(logins.communicate()[0])
    return (f"guarded {guarded['rps']:.0f} req/s ({guarded['non2xx']} non-2xx), "
            f"logins {logins['ok_rps']:.0f}/s ({logins['non2xx']} non-2xx)")


def flood_of_big_bodies(server, hosts=1):
    statuses = flood(server.port, size=FLOOD_BODY_BYTES, hosts=hosts)
    return "answers " + ", ".join(f"{count} × {status}" for status, count in sorted(statuses.items()))


FLOOD = f"300 × {FLOOD_BODY_BYTES / 1e6:.1f} MB login flood"
# (name, load, settings, whether the 100 MB target applies)
SCENARIOS = [
    (f"guarded storm + login storm, {STORM_SECONDS} s, defaults", storms, {}, True),
    (f"{FLOOD}, defaults", flood_of_big_bodies, {}, True),
    (f"{FLOOD}, AUTHD_HASH_THREADS=1", flood_of_big_bodies, {"AUTHD_HASH_THREADS": "1"}, True),
    (f"{FLOOD} from 300 addresses, defaults (outside the target)",
     lambda server: flood_of_big_bodies(server, hosts=300), {}, False),
]


def measure(name, load, settings, target):
    with tempfile.TemporaryDirectory() as directory:
        server = Server(f"sqlite://{directory}/memory.sqlite3?mode=rwc", **settings)
        try:
            post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
            idle = rss_kib(server.pid)
            sampler = Sampler(server.pid)
            try:
                outcome = load(server)
            finally:
                sampled = sampler.stop()
            hwm = peak_memory_kib(server.pid)
            still_ok = post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})
        finally:
            server.stop()
    peak = max(sampled, hwm)
    verdict = "PASS" if peak * 1024 < LIMIT_BYTES else "FAIL"
    shown = f"**{verdict}**" if target else f"({verdict})"
    if not still_ok.get("auth_token"):
        outcome += "; a login afterwards FAILED"
    return (f"| {name} | {outcome} | {idle / 1024:.0f} | {sampled / 1024:.0f} ({sampler.samples} samples) "
            f"| {hwm / 1024:.0f} | {shown} |"), verdict


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release --bins --examples")
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    print(f"limit: {LIMIT_BYTES / 2**20:.1f} MiB (100 MB)\n")
    print("| scenario | load | idle RSS MiB | peak VmRSS MiB (100 ms samples) | VmHWM MiB | < 100 MB |")
    print("|---|---|---:|---:|---:|---|")
    verdicts = []
    for name, load, settings, target in SCENARIOS:
        row, verdict = measure(name, load, settings, target)
        print(row, flush=True)
        if target:
            verdicts.append(verdict)
    return 0 if all(verdict == "PASS" for verdict in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
