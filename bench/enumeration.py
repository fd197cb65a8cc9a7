#!/usr/bin/env python3
"""Do reset_password, reset_username and resend_activation answer as fast for an unknown email as
for a known one? Sends known and unknown addresses interleaved, one connection, and prints
the medians and p95s.

Then the same for failed logins: does a login for an unknown name cost what a failed login of
an account imported from Django costs while it keeps Django's default hash (pbkdf2_sha256,
1,000,000 iterations, made here with hashlib as Django makes it)? Beside them, an unusable
password (`!…`) and an account already upgraded to Argon2id.

Run by hand after `cargo build --release`:

    python3 bench/enumeration.py            # 300 requests per case and endpoint, 150 per login case
"""

import base64
import hashlib
import http.client
import json
import os
import secrets
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BINARY, PASSWORD, free_port  # noqa: E402

REQUESTS = int(os.environ.get("ENUMERATION_REQUESTS", "300"))
LOGIN_REQUESTS = int(os.environ.get("ENUMERATION_LOGIN_REQUESTS", "150"))
DJANGO_ITERATIONS = 1_000_000
IMPORTED = ["imported1", "imported2", "imported3"]


def django_pbkdf2_sha256(password, iterations=DJANGO_ITERATIONS):
    """What Django 5.2's PBKDF2PasswordHasher.encode writes: a 22-character alphanumeric salt."""
    salt = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(key).decode()}"


def summary(values):
    values = sorted(values)
    return statistics.median(values), values[int(len(values) * 0.95) - 1]


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
            # Failed logins are what is measured: no limit may refuse them.
            AUTHD_THROTTLE_FAILURES_PER_IP_ACCOUNT="off",
            AUTHD_THROTTLE_FAILURES_PER_ACCOUNT="off",
            AUTHD_THROTTLE_FAILURES_PER_IP="off",
            AUTHD_THROTTLE_ANON="off",
        )
        # An active account for the resets (created before the server starts), which is also the
        # upgraded account of the logins…
        for username in ["known", *IMPORTED, "unusable"]:
            subprocess.run(
                [BINARY, "createsuperuser", "--username", username, "--email", f"{username}@example.com", "--no-input"],
                env=dict(env, AUTHD_SUPERUSER_PASSWORD=PASSWORD), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        # …and accounts as an import from Django leaves them, before the server reads which legacy
        # hash is the most common.
        with sqlite3.connect(f"{directory}/enum.sqlite3") as db:
            for username in IMPORTED:
                db.execute("UPDATE auth_user SET password = ? WHERE username = ?", (django_pbkdf2_sha256(PASSWORD), username))
            db.execute("UPDATE auth_user SET password = ? WHERE username = 'unusable'", ("!" + secrets.token_urlsafe(30),))
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

            # Failed logins, the cases interleaved; each imported account in turn.
            cases = {
                "unknown name": lambda index: f"nobody{index}",
                f"imported, pbkdf2_sha256 {DJANGO_ITERATIONS:,} iterations": lambda index: IMPORTED[index % len(IMPORTED)],
                "unusable password (!…)": lambda index: "unusable",
                "upgraded, Argon2id": lambda index: "known",
            }
            samples = {case: [] for case in cases}
            statuses = {case: set() for case in cases}
            for index in range(3):
                post("/token/login/", {"username": f"warmup{index}", "password": "wrong"})
            for index in range(LOGIN_REQUESTS):
                for case, username in cases.items():
                    elapsed, status, _ = post("/token/login/", {"username": username(index), "password": "not the password"})
                    samples[case].append(elapsed)
                    statuses[case].add(status)
            imported_median, _ = summary(samples[list(cases)[1]])
            print()
            print("| failed login | n | median ms | p95 ms | ÷ imported median | statuses |")
            print("|---|---:|---:|---:|---:|---|")
            for case in cases:
                median, p95 = summary(samples[case])
                print(f"| {case} | {len(samples[case])} | {median:.1f} | {p95:.1f} | {median / imported_median:.2f} | {sorted(statuses[case])} |")
            # The imported hash is a real one: the right password logs in, and upgrades it.
            _, status, _ = post("/token/login/", {"username": IMPORTED[0], "password": PASSWORD})
            with sqlite3.connect(f"{directory}/enum.sqlite3") as db:
                (upgraded,) = db.execute("SELECT password FROM auth_user WHERE username = ?", (IMPORTED[0],)).fetchone()
            print(f"\n{IMPORTED[0]} with the right password: {status}, stored hash now {upgraded.split('$')[1]}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
