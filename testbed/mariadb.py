"""The Model Registry's database: a MariaDB server of the testbed's own, from Debian's package.

MySQL is what kubeflow/model-registry v0.3.0 deploys by default (manifests/kustomize/base) and
what RHOAI accepts as an external registry database. PostgreSQL was tried first: v0.3.0 joins
`ParentContext` and `Attribution` unquoted, which PostgreSQL folds to lower case, so every
lookup of a model's versions or a version's artifacts fails ("relation "parentcontext" does
not exist"); upstream fixed it in v0.3.1 (#1583), which the Go module proxy does not serve.

The server lives in `<state>/mariadb/` (data, socket, generated password), listens on 127.0.0.1
only, and is created once and atomically (mariadb-install-db into `data.tmp`, database and user
made in bootstrap mode, then renamed), so a crash during the first `up` leaves nothing
half-made and `down`/`up` keep every registered model. As root it runs as the `mysql` user the
Debian package creates.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

DATABASE = "model_registry"
USER = "model_registry"
OS_USER = "mysql"
INSTALL_HINT = "install the MariaDB server (Debian: apt-get install -y mariadb-server)"
# The server's own files; its redo log is kept small (the default is 96 MiB).
_SERVER_OPTS = ("--no-defaults", "--skip-name-resolve", "--innodb-log-file-size=16M")


def binaries() -> dict[str, Path] | None:
    """mariadbd and mariadb-install-db, or None when MariaDB is not installed."""
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    install = shutil.which("mariadb-install-db")
    if not server or not install:
        return None
    return {"server": Path(server), "install": Path(install)}


class Layout:
    """Where the server's files are, and as whom it runs."""

    def __init__(self, state: Path) -> None:
        self.root = state / "mariadb"
        self.data = self.root / "data"
        self.run = self.root / "run"
        self.password_file = self.root / "password"

    def owner(self) -> pwd.struct_passwd | None:
        """The `mysql` account when we are root (the server will not run as root), else None."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(OS_USER)
        except KeyError:
            raise RuntimeError(f"running as root, MariaDB needs the unprivileged `{OS_USER}` user to run as, and "
                               f"there is none: {INSTALL_HINT} (it creates the user)") from None

    def as_owner(self, argv: list[str]) -> list[str]:
        """`argv` run as the server's owner: setpriv execs in place, so the pid stays the server's."""
        if self.owner() is None:
            return argv
        return ["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups", "--", *argv]

    def password(self) -> str:
        """The database password, generated on first use and kept (0600, readable by us only)."""
        if not self.password_file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.password_file.with_name("password.tmp")
            tmp.write_text(secrets.token_urlsafe(24))  # URL-safe: needs no quoting in the DSN or in SQL
            tmp.chmod(0o600)
            tmp.replace(self.password_file)
        return self.password_file.read_text().strip()

    def dsn(self, port: int) -> str:
        """The registry's DSN (go-sql-driver/mysql), as upstream's manifests write it."""
        return f"{USER}:{self.password()}@tcp(127.0.0.1:{port})/{DATABASE}?charset=utf8mb4"

    def _own_dir(self, path: Path) -> None:
        """Create `path` for the server: 0700 and, when we are root, owned by `mysql`."""
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        owner = self.owner()
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def ensure(self, bins: dict[str, Path], log: Path) -> bool:
        """Create the server's data, database and user unless they exist; True when created now."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._own_dir(self.run)
        if (self.data / DATABASE).is_dir():
            return False
        tmp = self.root / "data.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self._own_dir(tmp)
        if self.owner() is not None and subprocess.run(self.as_owner(["test", "-w", str(tmp)]), check=False).returncode:
            raise RuntimeError(f"the `{OS_USER}` user cannot write to {tmp}: every directory above it must be "
                               "searchable by others (chmod o+x), or set TESTBED_STATE to a directory it can reach")
        sql = (f"FLUSH PRIVILEGES;\nCREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;\n"
               f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{self.password()}';\n"
               f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'127.0.0.1';\n")
        try:
            with open(log, "ab") as out:
                # root may log in through the socket only (as the OS user root); no test database
                subprocess.run(self.as_owner([
                    str(bins["install"]), "--no-defaults", f"--datadir={tmp}", "--auth-root-authentication-method=socket",
                    "--skip-test-db", "--skip-name-resolve", "--innodb-log-file-size=16M"]),
                    stdout=out, stderr=subprocess.STDOUT, check=True)
                subprocess.run(self.as_owner([str(bins["server"]), *_SERVER_OPTS, "--bootstrap", f"--datadir={tmp}",
                                              "--skip-networking", "--log-warnings=0"]),
                               input=sql.encode(), stdout=out, stderr=subprocess.STDOUT, check=True)
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"creating the MariaDB database failed ({err}): see {log}") from None
        tmp.replace(self.data)
        return True

    def server_argv(self, bins: dict[str, Path], port: int) -> list[str]:
        """The server: TCP on 127.0.0.1 only, socket and pid file in the state directory, log on stderr.

        The redo log is written at each commit but not flushed to disk (as etcd runs with
        --unsafe-no-fsync): a killed server loses nothing, only a host crash could.
        """
        return self.as_owner([str(bins["server"]), *_SERVER_OPTS, f"--datadir={self.data}", f"--port={port}",
                              "--bind-address=127.0.0.1", f"--socket={self.run / 'mysqld.sock'}",
                              f"--pid-file={self.run / 'mariadbd.pid'}", "--innodb-flush-log-at-trx-commit=2"])


def ready(port: int) -> bool:
    """True once the server greets a client (protocol 10); an error packet (0xff) or no answer is not ready."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            greeting = sock.recv(5)
    except OSError:
        return False
    return len(greeting) == 5 and greeting[4] == 10
