#!/usr/bin/env python3
"""Benchmark authd with wrk: guarded GET /users/me/ against GET /healthz, logins (against the
time of one Argon2id verification, measured in the same run), guarded requests and successful
logins during a login storm, and the memory a flood of large login bodies costs. Run by hand
on a quiet machine, never in CI:

    cargo build --release --bins --examples
    python3 bench/run.py                       # SQLite
    AUTHD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres python3 bench/run.py

Figures are only comparable within one run: report ratios. wrk shares the two cores with the
server, as a load balancer in front of it would not.
"""

import base64
import json
import os
import re
import threading
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "authd")
VERIFY_TIME = os.path.join(ROOT, "target", "release", "examples", "verify_time")
FLOOD_CLIENTS = 300
FLOOD_BODY_BYTES = 1_500_000
DURATION = os.environ.get("BENCH_DURATION", "10s")
PASSWORD = "correct horse battery staple"
THREADS = "2"
STORM_PAIRS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, token=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def wrk(url, connections, extra=()):
    out = subprocess.run(
        ["wrk", "-t", THREADS, "-c", str(connections), "-d", DURATION, "--latency", *extra, url],
        check=True, capture_output=True, text=True,
    ).stdout
    def latency(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return parse_wrk(out, latency(50), latency(99))


def parse_wrk(out, p50=None, p99=None):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(errors.group(1)) if errors else 0
    ok_rps = rps * (total - non2xx) / total if total else 0.0
    return {"rps": rps, "ok_rps": ok_rps, "p50": p50, "p99": p99, "non2xx": non2xx}


def verify_ms():
    """The median of three runs of examples/verify_time (each the median of 40 verifications)."""
    runs = [json.loads(subprocess.run([VERIFY_TIME], check=True, capture_output=True, text=True).stdout)["verify_ms"]
            for _ in range(3)]
    return statistics.median(runs)


def peak_memory_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read()).group(1))


def flood(port, clients=FLOOD_CLIENTS, size=FLOOD_BODY_BYTES, hosts=1):
    """`clients` logins at once, each with a `size`-byte JSON body (one huge unknown field),
    from `hosts` loopback addresses (127.0.1.1, …) in turn; returns how many got each status."""
    body = json.dumps({"username": "bench", "password": PASSWORD, "padding": "x" * size}).encode()
    head = (f"POST /token/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    statuses = {}
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def one(index):
        status = "error"
        source = (f"127.0.{1 + index % hosts // 250}.{1 + index % hosts % 250}", 0) if hosts > 1 else None
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60, source_address=source) as s:
                start.wait()
                s.sendall(head)
                try:
                    s.sendall(body)
                except OSError:
                    pass  # answered (and closed) before the body was read: what we want
                reply = s.recv(64).decode(errors="replace")
                status = reply.split(" ")[1] if reply.startswith("HTTP/") else "no answer"
        except OSError as err:
            status = type(err).__name__
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=one, args=(index,)) for index in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


class Server:
    def __init__(self, database_url, binary=BINARY, scheme="http", **settings):
        self.port = free_port()
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        # Expiry is on by default; the idle limit turns last-use tracking on too. The login
        # benchmarks send many logins for one account at once from one address, which the
        # failed-login limits count while they are in flight.
        self.env = {**os.environ, "DATABASE_URL": database_url, "AUTHD_BIND": f"127.0.0.1:{self.port}",
                    "RUST_LOG": "info", "AUTHD_TOKEN_IDLE_SECONDS": "3600",
                    "AUTHD_THROTTLE_FAILURES_PER_IP_ACCOUNT": "off",
                    "AUTHD_THROTTLE_FAILURES_PER_ACCOUNT": "off",
                    "AUTHD_THROTTLE_FAILURES_PER_IP": "off",
                    "AUTHD_THROTTLE_FAILURES_PER_SESSION": "off", **settings}
        env = self.env
        self.log = open(os.devnull, "w")
        self.binary = binary
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=self.log, stderr=self.log)
        self.pid = self.process.pid
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{self.base}/healthz")
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("authd did not start")

    def command(self, *args):
        """An `authd` command against the server's database; its stdout."""
        return subprocess.run([self.binary, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def form_script(path, body, headers):
    """A wrk Lua script that POSTs `body` (form-encoded) with `headers`."""
    with open(path, "w") as script:
        script.write('wrk.method = "POST"\n')
        script.write('wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
        for name, value in headers.items():
            script.write(f'wrk.headers["{name}"] = "{value}"\n')
        script.write(f'wrk.body = "{body}"\n')
    return ("-s", path)


def floor_rounds(server, token, workdir):
    """Three alternating rounds at c=16 of authd's JSON 404 (the floor), guarded GET
    /users/me/ and an introspection by a registered client; the medians."""
    client = json.loads(server.command("client", "create", "bench resource server"))
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    introspection = form_script(os.path.join(workdir, "introspect.lua"), f"token={token}",
                                {"Authorization": f"Basic {basic}"})
    auth = ("-H", f"Authorization: Token {token}")
    rounds = {"floor (JSON 404)": [], "users/me": [], "introspect": []}
    for _ in range(3):
        rounds["floor (JSON 404)"].append(wrk(f"{server.base}/nothing/", 16)["rps"])
        rounds["users/me"].append(wrk(f"{server.base}/users/me/", 16, auth)["rps"])
        answered = wrk(f"{server.base}/oauth/introspect", 16, introspection)
        if answered["non2xx"]:
            raise SystemExit(f"introspection failed {answered['non2xx']} times")
        rounds["introspect"].append(answered["rps"])
    return {name: statistics.median(values) for name, values in rounds.items()}


def refresh_timing(server, rounds=200):
    """Sequential refreshes of one OAuth2 family (each rotates), and sequential logins: median
    milliseconds of each. A refresh costs no password hash."""
    def form_post(fields):
        data = urllib.parse.urlencode(fields).encode()
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(f"{server.base}/oauth/token", data=data)) as response:
            body = json.loads(response.read())
        return (time.perf_counter() - started) * 1000, body
    _, pair = form_post({"grant_type": "password", "username": "bench", "password": PASSWORD})
    refreshes, logins = [], []
    for _ in range(rounds):
        elapsed, pair = form_post({"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]})
        refreshes.append(elapsed)
    for _ in range(20):
        logins.append(form_post({"grant_type": "password", "username": "bench", "password": PASSWORD})[0])
    return statistics.median(refreshes), statistics.median(logins)


def bench(label, database_url):
    server = Server(database_url)
    storms = []
    workdir = tempfile.mkdtemp()
    try:
        post(f"{server.base}/users/", {"username": "bench", "password": PASSWORD})
        token = post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})["auth_token"]
        auth = ("-H", f"Authorization: Token {token}")
        rows = {}
        for connections in (16, 64):
            rows[f"healthz c={connections}"] = wrk(f"{server.base}/healthz", connections)
            rows[f"users/me c={connections}"] = wrk(f"{server.base}/users/me/", connections, auth)
        login_script = ("-s", os.path.join(ROOT, "bench", "login.lua"))
        # The machine's speed drifts over minutes: time one verification just before and just
        # after the logins, and relate the logins to the mean.
        verify_before = verify_ms()
        rows["login c=16"] = wrk(f"{server.base}/token/login/", 16, login_script)
        verify = (verify_before + verify_ms()) / 2
        # p99 is noisy on a shared machine: alternate calm and storm runs, compare each pair.
        for attempt in range(1, STORM_PAIRS + 1):
            rows[f"users/me c=16 calm #{attempt}"] = wrk(f"{server.base}/users/me/", 16, auth)
            storm = subprocess.Popen(
                ["wrk", "-t", "1", "-c", "16", "-d", DURATION, *login_script, f"{server.base}/token/login/"],
                stdout=subprocess.PIPE, text=True,
            )
            time.sleep(1)
            rows[f"users/me c=16 login storm #{attempt}"] = wrk(f"{server.base}/users/me/", 16, auth)
            storms.append(parse_wrk(storm.communicate()[0]))
        floors = floor_rounds(server, token, workdir)
        refresh_ms, login_ms = refresh_timing(server)
        before = peak_memory_kib(server.pid)
        statuses = flood(server.port)
        after = peak_memory_kib(server.pid)
        still_ok = post(f"{server.base}/token/login/", {"username": "bench", "password": PASSWORD})
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n### {label}\n")
    print("| scenario | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} |")
    djoser = {16: 1165, 64: 1008}
    print()
    for c in (16, 64):
        me, health = rows[f"users/me c={c}"], rows[f"healthz c={c}"]
        print(f"- c={c}: guarded/unauthenticated = {me['rps'] / health['rps']:.2f}; "
              f"guarded vs Djoser ({djoser[c]} req/s) = {me['rps'] / djoser[c]:.1f}x")
    logins = rows['login c=16']
    print(f"- logins: {logins['ok_rps']:.0f}/s successful ({logins['non2xx']} failed; Djoser ~8/s); "
          f"one verify {verify:.1f} ms (mean of before and after), so cores / verify = {os.cpu_count() * 1000 / verify:.0f}/s and "
          f"logins reach {logins['ok_rps'] * verify / (os.cpu_count() * 1000):.0%} of it")
    ratios = [
        rows[f"users/me c=16 login storm #{i}"]["p99"] / rows[f"users/me c=16 calm #{i}"]["p99"]
        for i in range(1, STORM_PAIRS + 1)
    ]
    listed = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"- guarded p99 during a login storm / calm, pair by pair: {listed} (median {statistics.median(ratios):.2f})")
    listed = ", ".join(f"{s['ok_rps']:.0f} ({s['non2xx']} shed or failed)" for s in storms)
    print(f"- successful logins/s during each storm: {listed}")
    floor = floors["floor (JSON 404)"]
    print(f"- three alternating rounds at c=16, medians: JSON 404 {floor:.0f} req/s (the floor), "
          f"guarded users/me {floors['users/me']:.0f} ({floors['users/me'] / floor:.0%} of it, target 70%), "
          f"introspection {floors['introspect']:.0f} ({floors['introspect'] / floor:.0%}, target 50%); "
          f"expiry and last-use tracking on")
    print(f"- one refresh (rotation) {refresh_ms:.2f} ms median, one password grant {login_ms:.2f} ms: "
          f"a refresh costs no password hash")
    print(f"- flood of {FLOOD_CLIENTS} concurrent {FLOOD_BODY_BYTES / 1e6:.1f} MB logins: answers {statuses}; "
          f"peak RSS {before / 1024:.0f} MiB before, {after / 1024:.0f} MiB after; "
          f"a login afterwards {'works' if still_ok.get('auth_token') else 'FAILED'}")
    return rows


def main():
    if not os.path.exists(BINARY) or not os.path.exists(VERIFY_TIME):
        raise SystemExit("build first: cargo build --release --bins --examples")
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as directory:
        bench("SQLite", f"sqlite://{directory}/bench.sqlite3?mode=rwc")
    admin = os.environ.get("AUTHD_BENCH_POSTGRES_URL")
    if not admin:
        print("\n(AUTHD_BENCH_POSTGRES_URL not set: PostgreSQL skipped)")
        return
    name = f"authd_bench_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    try:
        bench("PostgreSQL", admin.rsplit("/", 1)[0] + f"/{name}")
    finally:
        subprocess.run(["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=True)


if __name__ == "__main__":
    sys.exit(main())
