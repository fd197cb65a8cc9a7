"""Known-answer vectors for authd's Django password formats (src/crypto/django.rs).

Not part of any build. The vectors in src/crypto/django.rs were produced with Django 5.2.20,
bcrypt 5.0.0 and argon2-cffi 25.1.0 on Python 3.11:

    python3 -m venv /tmp/djvenv
    /tmp/djvenv/bin/pip install Django bcrypt argon2-cffi
    /tmp/djvenv/bin/python tests/django/make_hashes.py

Every hash is made by Django's own hashers (make_password, or a hasher's encode with a given
cost), and every one is checked with Django's check_password before it is printed, so a vector
is what a Django site stores and accepts. Salts are random: each run prints new vectors.
"""

import hashlib
import warnings

import django
from django.conf import settings

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.BCryptPasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ],
)
django.setup()

import argon2  # noqa: E402
from django.contrib.auth.hashers import (  # noqa: E402
    MD5PasswordHasher,
    PBKDF2PasswordHasher,
    PBKDF2SHA1PasswordHasher,
    ScryptPasswordHasher,
    check_password,
    make_password,
)

# tests/api/helpers.rs's PASSWORD, and a non-ASCII one (Django hashes the UTF-8 bytes).
PASSWORD = "correct horse battery staple"
UNICODE = "pässwörd ✓ 密码"


def vector(name, password, encoded):
    """A hash that Django accepts for `password`, as a Rust (password, hash) constant."""
    assert check_password(password, encoded), (name, encoded)
    print(f'const {name}: (&str, &str) = (\n    "{password}",\n    "{encoded}",\n);')


def refused(name, encoded):
    """A hash of PASSWORD in a format authd refuses, as a Rust constant."""
    print(f'const {name}: &str = "{encoded}";')


salt = PBKDF2PasswordHasher().salt
# Django 5.2's defaults: 1,000,000 iterations, bcrypt's 12 rounds, argon2id m=102400,t=2,p=8,
# scrypt N=2^14,r=8,p=5.
vector("PBKDF2_SHA256_DEFAULT", PASSWORD, make_password(PASSWORD, hasher="pbkdf2_sha256"))
vector("PBKDF2_SHA256_UNICODE", UNICODE, PBKDF2PasswordHasher().encode(UNICODE, salt(), 1000))
# Django 1.x's 12-character salts and 10,000-36,000 iterations.
vector("PBKDF2_SHA256_OLD", PASSWORD, PBKDF2PasswordHasher().encode(PASSWORD, salt()[:12], 36000))
vector("PBKDF2_SHA1", PASSWORD, PBKDF2SHA1PasswordHasher().encode(PASSWORD, salt(), 10000))
vector("ARGON2ID_DEFAULT", PASSWORD, make_password(PASSWORD, hasher="argon2"))
# argon2i, as Django 1.10-2.x made them (argon2-cffi's type I), at a small cost.
argon2i = "argon2" + argon2.low_level.hash_secret(
    UNICODE.encode(), salt().encode(), time_cost=2, memory_cost=512, parallelism=2,
    hash_len=16, type=argon2.low_level.Type.I,
).decode()
vector("ARGON2I", UNICODE, argon2i)
# Argon2 version 0x10 with no `v=` (argon2-cffi before 16.0, Django 1.10): the PHC default.
argon2_v10 = "argon2" + argon2.low_level.hash_secret(
    PASSWORD.encode(), salt().encode(), time_cost=2, memory_cost=512, parallelism=2,
    hash_len=16, type=argon2.low_level.Type.I, version=0x10,
).decode().replace("$v=16$", "$")
vector("ARGON2I_NO_VERSION", PASSWORD, argon2_v10)
vector("BCRYPT_SHA256", PASSWORD, make_password(PASSWORD, hasher="bcrypt_sha256"))
vector("BCRYPT_SHA256_UNICODE", UNICODE, make_password(UNICODE, hasher="bcrypt_sha256"))
vector("BCRYPT", PASSWORD, make_password(PASSWORD, hasher="bcrypt"))
vector("SCRYPT_DEFAULT", PASSWORD, make_password(PASSWORD, hasher="scrypt"))
# Django 4.0-5.0's p=1, and with a non-ASCII password.
vector("SCRYPT_P1", PASSWORD, ScryptPasswordHasher().encode(PASSWORD, salt(), 2**14, 8, 1))
vector("SCRYPT_UNICODE", UNICODE, ScryptPasswordHasher().encode(UNICODE, salt(), 2**14, 8, 1))

# Formats authd never accepts, made for the right password. Django 5.2 still has MD5; the
# others were removed from Django (5.0: crypt; 5.1: sha1, unsalted_sha1, unsalted_md5) and are
# built here as those hashers built them.
md5 = MD5PasswordHasher().encode(PASSWORD, salt())
assert check_password(PASSWORD, md5)
refused("MD5", md5)
unsalted_md5 = hashlib.md5(PASSWORD.encode()).hexdigest()
refused("UNSALTED_MD5", unsalted_md5)
refused("UNSALTED_MD5_PREFIXED", "md5$$" + unsalted_md5)
refused("UNSALTED_SHA1", "sha1$$" + hashlib.sha1(PASSWORD.encode()).hexdigest())
s = salt()[:12]
refused("SHA1", f"sha1${s}${hashlib.sha1((s + PASSWORD).encode()).hexdigest()}")
# crypt(3), Django's CryptPasswordHasher's format (Python 3.13 has no crypt module).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt
refused("CRYPT", "crypt$$" + crypt.crypt(PASSWORD, "ab"))
unusable = make_password(None)
assert not check_password(PASSWORD, unusable)
refused("UNUSABLE", unusable)
