#!/usr/bin/env python3
"""Do reset_password, reset_username and resend_activation answer as fast for an unknown email as
for a known one? Sends known and unknown addresses interleaved, one connection, and prints
the medians and p95s. Run by hand after `cargo build --release`:

    python3 bench/enumeration.py            # 300 requests per case and endpoint
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, free_port  # noqa: E402

REQUESTS = int(os.environ.get("ENUMERATION_REQUESTS", "300"))


def main():
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=f"sqlite://{directory}/enum.sqlite3?mode=rwc",
            AUTHD_BIND=f"127.0.0.1:{port}",
            AUTHD_EMAIL_URL=f"file://{directory}/mail",
            AUTHD_SEND_ACTIVATION_EMAIL="true",
            RUST_LOG="warn",
        )
        # An active account for the resets (created before the server starts)…
        subprocess.run(
            [BINARY, "createsuperuser", "--username", "known", "--email", "known@example.com", "--no-input"],
            env=dict(env, AUTHD_SUPERUSER_PASSWORD=PASSWORD), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        server = subprocess.Popen([BINARY, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port)
            for _ in range(200):
                try:
                    connection.request("GET", "/healthz")
                    connection.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.05)
                    connection = http.client.HTTPConnection("127.0.0.1", port)

            def post(path, body):
                started = time.perf_counter()
                connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                return (time.perf_counter() - started) * 1000, response.status, payload

            # …and an inactive one for resend_activation.
            post("/users/", {"username": "pending", "email": "pending@example.com", "password": PASSWORD})
            print("| endpoint | case | n | median ms | p95 ms | statuses |")
            print("|---|---|---:|---:|---:|---|")
            for path in ("/users/reset_password/", "/users/reset_username/", "/users/resend_activation/"):
                samples = {"known": [], "unknown": []}
                statuses = {"known": set(), "unknown": set()}
                for _ in range(50):
                    post(path, {"email": "warmup@example.com"})
                for index in range(2 * REQUESTS):
                    case = "known" if index % 2 == 0 else "unknown"
                    known = "pending@example.com" if path.endswith("resend_activation/") else "known@example.com"
                    email = known if case == "known" else f"nobody{index}@example.com"
                    elapsed, status, _ = post(path, {"email": email})
                    samples[case].append(elapsed)
                    statuses[case].add(status)
                for case in ("known", "unknown"):
                    values = sorted(samples[case])
                    p95 = values[int(len(values) * 0.95) - 1]
                    print(f"| {path} | {case} | {len(values)} | {statistics.median(values):.3f} | {p95:.3f} | {sorted(statuses[case])} |")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
