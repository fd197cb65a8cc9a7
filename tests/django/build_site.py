"""A real Django site's database, made by Django itself, for `authd import-django`'s tests.

    python build_site.py build  DATABASE MANIFEST   # migrate an empty database, then fill it
    python build_site.py mutate DATABASE MANIFEST   # what a live site does after the first import

DATABASE is a SQLite path (or `sqlite:///abs/path`), `postgres://user[:pass]@host:port/name` or
`mysql://user[:pass]@host:port/name`; the database itself must exist (SQLite: its folder). The
manifest (JSON) says what was made, with every plain password and DRF key, so that the tests can
log in with them; `mutate` reads it and writes it back changed.

Needs Django 5.2, djangorestframework, argon2-cffi and bcrypt; psycopg for PostgreSQL and PyMySQL
for MariaDB/MySQL (.ci/run pins them in a venv). Every hash is made by Django's own hashers and
checked with Django's check_password before it is stored.

The hashers keep their algorithm names (and so their stored formats) but run at lower costs
than Django 5.2's defaults, so that authd's debug-build tests verify them quickly; the format at
Django's default costs is covered by the known-answer vectors in src/crypto/django.rs.
"""

import json
import secrets
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote, urlsplit

import django
from django.conf import settings
from django.contrib.auth import hashers


class PBKDF2PasswordHasher(hashers.PBKDF2PasswordHasher):
    iterations = 20_000


class PBKDF2SHA1PasswordHasher(hashers.PBKDF2SHA1PasswordHasher):
    iterations = 10_000


class Argon2PasswordHasher(hashers.Argon2PasswordHasher):
    memory_cost = 8 * 1024
    parallelism = 2


class BCryptSHA256PasswordHasher(hashers.BCryptSHA256PasswordHasher):
    rounds = 8


class BCryptPasswordHasher(hashers.BCryptPasswordHasher):
    rounds = 8


class ScryptPasswordHasher(hashers.ScryptPasswordHasher):
    work_factor = 2**12
    parallelism = 1


HASHERS = [
    # The first is the site's default: what set_password uses in `mutate`.
    "__main__.PBKDF2PasswordHasher",
    "__main__.PBKDF2SHA1PasswordHasher",
    "__main__.Argon2PasswordHasher",
    "__main__.BCryptSHA256PasswordHasher",
    "__main__.BCryptPasswordHasher",
    "__main__.ScryptPasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]


def database_settings(source):
    """Django's DATABASES entry for a path or URL."""
    if "://" not in source:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": source}
    url = urlsplit(source)
    if url.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(url.path)}
    engines = {
        "postgres": "django.db.backends.postgresql",
        "postgresql": "django.db.backends.postgresql",
        "mysql": "django.db.backends.mysql",
    }
    if url.scheme not in engines:
        sys.exit(f"unsupported database URL scheme {url.scheme!r}")
    entry = {
        "ENGINE": engines[url.scheme],
        "NAME": unquote(url.path.lstrip("/")),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
    }
    if url.scheme == "mysql":
        import pymysql

        # Django checks mysqlclient's version; PyMySQL stands in for it.
        pymysql.version_info = (2, 2, 7, "final", 0)
        pymysql.install_as_MySQLdb()
        entry["OPTIONS"] = {"charset": "utf8mb4"}
    return entry


def configure(source):
    settings.configure(
        DATABASES={"default": database_settings(source)},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "rest_framework.authtoken",
        ],
        PASSWORD_HASHERS=HASHERS,
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


def password_for(username):
    return f"{username} {secrets.token_urlsafe(9)}"


# A fixed past, so that the manifest's times can be compared with what authd stores.
JOINED = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
LAST_LOGIN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def build(source, manifest_path):
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    # MariaDB's and MySQL's default collations ignore case, so Django's unique username would
    # refuse `alice` beside `Alice`; a site can make the column binary, and this one does, so
    # that the collision authd must resolve exists on every source.
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE auth_user MODIFY username varchar(150) "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
            )

    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType
    from rest_framework.authtoken.models import Token

    # A fake app's content types and permissions, as a site's own models would have made them;
    # `moderate` exists on both models, so authd merges the two into one `blog.moderate`.
    blog = {}
    for model in ("post", "comment"):
        content_type = ContentType.objects.create(app_label="blog", model=model)
        for action in ("add", "change", "delete", "view", "moderate"):
            blog[(action, model)] = Permission.objects.create(
                content_type=content_type,
                codename=f"{action}_{model}" if action != "moderate" else "moderate",
                name=f"Can {action} {model}",
            )

    users = []

    def add(username, hasher, token=False, **fields):
        """A user; its password hashed by `hasher` (None: unusable)."""
        password = None if hasher is None else password_for(username)
        user = User(
            username=username,
            email=fields.pop("email", f"{username.lower()}@example.com"),
            date_joined=JOINED + timedelta(days=len(users)),
            last_login=fields.pop("last_login", LAST_LOGIN),
            **fields,
        )
        if password is None:
            user.set_unusable_password()
        else:
            user.password = hashers.make_password(password, hasher=hasher)
            assert hashers.check_password(password, user.password), username
            assert user.password.startswith(hasher + "$"), user.password
        user.save()
        entry = {"user": user, "password": password, "hasher": hasher, "token": None}
        if token:
            entry["token"] = Token.objects.create(user=user).key
        users.append(entry)
        return user

    for hasher in (
        "pbkdf2_sha256",
        "pbkdf2_sha1",
        "argon2",
        "bcrypt_sha256",
        "bcrypt",
        "scrypt",
    ):
        add(hasher, hasher, token=hasher in ("pbkdf2_sha256", "argon2", "scrypt"))
    add("md5", "md5")
    add("Alice", "pbkdf2_sha256", token=True, email="alice.upper@example.com")
    add("inactive", "argon2", token=True, is_active=False)
    add("dormant", "pbkdf2_sha256", is_active=False, last_login=None)
    add("staff", "bcrypt_sha256", token=True, is_staff=True)
    add("root", "pbkdf2_sha256", token=True, is_staff=True, is_superuser=True)
    add("nopassword", None, token=True)
    # Made last, so its id is higher than Alice's: the one authd skips.
    add("alice", "argon2", token=True)

    by_name = {entry["user"].username: entry["user"] for entry in users}
    editors = Group.objects.create(name="editors")
    editors.permissions.set(
        [blog[("add", "post")], blog[("change", "post")], blog[("view", "comment")]]
    )
    moderators = Group.objects.create(name="moderators")
    moderators.permissions.set(
        [blog[("moderate", "post")], blog[("moderate", "comment")], blog[("delete", "comment")]]
    )
    Group.objects.create(name="empty")
    by_name["pbkdf2_sha256"].groups.set([editors])
    by_name["staff"].groups.set([editors, moderators])
    by_name["alice"].groups.set([editors])
    by_name["argon2"].user_permissions.set([blog[("view", "post")], blog[("moderate", "comment")]])
    by_name["bcrypt"].groups.set([moderators])
    by_name["bcrypt"].user_permissions.set([blog[("view", "post")]])

    write_manifest(source, manifest_path, users_from(users))


def users_from(entries):
    """The manifest's users, read back from the database."""
    return [describe(e["user"], e["password"], e["hasher"]) for e in entries]


def describe(user, password, hasher):
    from rest_framework.authtoken.models import Token

    user.refresh_from_db()
    token = Token.objects.filter(user=user).first()
    direct = {
        f"{p.content_type.app_label}.{p.codename}" for p in user.user_permissions.all()
    }
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "password": password,
        "hasher": hasher,
        "password_hash": user.password,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "date_joined": user.date_joined.isoformat(),
        "last_login": user.last_login.isoformat() if user.last_login else None,
        "token": token.key if token else None,
        "groups": sorted(g.name for g in user.groups.all()),
        "permissions": sorted(direct),
        # Through groups as well, merged by app_label.codename: what introspection shows
        # (a superuser's: every permission there is).
        "effective_permissions": sorted(
            direct
            | {
                f"{p.content_type.app_label}.{p.codename}"
                for g in user.groups.all()
                for p in g.permissions.all()
            }
        ),
    }


def write_manifest(source, manifest_path, users, changes=None):
    from django.contrib.auth.models import Group, Permission
    from django.db import connection

    manifest = {
        "source": source,
        "vendor": connection.vendor,
        "users": users,
        "groups": [
            {
                "id": g.id,
                "name": g.name,
                "permissions": sorted(
                    {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
                ),
            }
            for g in Group.objects.order_by("id")
        ],
        "permissions": sorted(
            {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()}
        ),
        "permission_rows": Permission.objects.count(),
        "collisions": [
            {"id": u["id"], "username": u["username"], "collides_with": other}
            for u in users
            for other in [
                next(
                    (
                        {"id": v["id"], "username": v["username"]}
                        for v in users
                        if v["id"] < u["id"] and v["username"].lower() == u["username"].lower()
                    ),
                    None,
                )
            ]
            if other
        ],
    }
    if changes is not None:
        manifest["changes"] = changes
    with open(manifest_path, "w") as out:
        json.dump(manifest, out, indent=2)
        out.write("\n")


def mutate(source, manifest_path):
    """What happens on the Django site while clients move to authd; says so in the manifest's
    `changes`, and updates its users."""
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    with open(manifest_path) as manifest_file:
        manifest = json.load(manifest_file)
    entries = {u["username"]: u for u in manifest["users"]}
    changes = {}

    def user(name):
        return User.objects.get(username=name)

    changed = user("pbkdf2_sha1")
    new_password = password_for(changed.username)
    changed.set_password(new_password)
    changed.save()
    changes["password_changed"] = {
        "username": changed.username,
        "old_password": entries[changed.username]["password"],
    }
    entries[changed.username]["password"] = new_password
    entries[changed.username]["hasher"] = "pbkdf2_sha256"

    deactivated = user("staff")
    deactivated.is_active = False
    deactivated.save()
    changes["deactivated"] = deactivated.username

    newcomer = User(username="newcomer", email="newcomer@example.com")
    newcomer_password = password_for(newcomer.username)
    newcomer.set_password(newcomer_password)
    newcomer.save()
    Token.objects.create(user=newcomer)
    entries[newcomer.username] = {"password": newcomer_password, "hasher": "pbkdf2_sha256"}
    changes["added"] = newcomer.username

    replaced = user("argon2")
    old_key = Token.objects.get(user=replaced).key
    Token.objects.filter(user=replaced).delete()
    Token.objects.create(user=replaced)
    changes["token_replaced"] = {"username": replaced.username, "old_key": old_key}

    revoked = user("root")
    old_key = Token.objects.get(user=revoked).key
    Token.objects.filter(user=revoked).delete()
    changes["token_deleted"] = {"username": revoked.username, "old_key": old_key}

    # Also changed in authd by the test between the runs: listed as changed_in_authd.
    both = user("scrypt")
    both.email = "scrypt.django@example.com"
    both.save()
    changes["changed_in_django_too"] = both.username

    users = [
        describe(user(name), entry["password"], entry["hasher"])
        for name, entry in entries.items()
    ]
    write_manifest(source, manifest_path, sorted(users, key=lambda u: u["id"]), changes)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("build", "mutate"):
        sys.exit(__doc__)
    mode, source, manifest_path = sys.argv[1:]
    configure(source)
    {"build": build, "mutate": mutate}[mode](source, manifest_path)


if __name__ == "__main__":
    main()
