"""Throwaway PostgreSQL and MariaDB servers for the tests, on loopback ports.

Session-scoped fixtures start one server of each kind on first use and remove it
at the end of the run:

- ``postgres_url`` / ``mysql_url``: a URL (``postgresql://postgres@127.0.0.1:PORT/lct``,
  ``mysql://root@127.0.0.1:PORT/lct``) to a database shared by the session.
- ``postgres_server`` / ``mysql_server``: the server object, for fault tests:
  ``stop()``, ``start()``, ``restart()``, ``create_database(name) -> url``,
  ``connect(database)``, ``query(url, sql)``; ``pause()`` / ``resume()`` (SIGSTOP/SIGCONT) make it hang.
- ``fresh_postgres_url`` / ``fresh_mysql_url``: a new empty database for one test.

When the server binaries are missing the fixtures skip the test, unless
``LLM_COST_TRACKER_REQUIRE_SERVERS=1`` (CI), where they fail it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from conftest import require_servers

_START_TIMEOUT = 60.0


def _missing(what: str) -> NoReturn:
    message = f"{what} is not installed"
    if require_servers():
        pytest.fail(f"{message} (LLM_COST_TRACKER_REQUIRE_SERVERS=1)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout} s")


def _pids_of_children(pid: int) -> list[int]:
    """``pid`` and every descendant, read from /proc (PostgreSQL forks one process per backend)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _start_on_a_free_port(server: PostgresServer | MariaDBServer, attempts: int = 4) -> None:
    """Start ``server``; if another process took its port meanwhile, try another port."""
    for attempt in range(attempts):
        try:
            server.start()
            return
        except (RuntimeError, subprocess.CalledProcessError):
            if attempt == attempts - 1:
                raise
            server.stop_quietly()
            server.port = _free_port()


class PostgresServer:
    """A PostgreSQL cluster made by initdb in a temp dir, run by pg_ctl as a non-root user."""

    kind = "postgres"

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.root = tempfile.mkdtemp(prefix="lct-pg-")
        self.datadir = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "server.log")
        self.user = "postgres"
        self.database = "lct"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: hand the directory to "nobody".
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._run_as = ["runuser", "-u", "nobody", "--"]
        self._run(
            "initdb",
            "-D",
            self.datadir,
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        _start_on_a_free_port(self)
        self.url = self.create_database(self.database)

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._run_as, os.path.join(self.bindir, tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
        )

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-o", options, "-w", "start")
        _wait_for_port(self.port, _START_TIMEOUT, None)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _postmaster_pid(self) -> int:
        return int(Path(self.datadir, "postmaster.pid").read_text().split()[0])

    def pause(self) -> None:
        for pid in _pids_of_children(self._postmaster_pid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in _pids_of_children(self._postmaster_pid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def is_running(self) -> bool:
        return Path(self.datadir, "postmaster.pid").exists()

    def connect(self, database: str | None = None) -> Any:
        """An autocommit psycopg connection to ``database`` (default: the session database).

        Its session runs in UTC, as the library's do: the server's default
        time zone is the machine's (initdb reads TZ), and timestamptz values
        come back in the session's zone.
        """
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=database or self.database,
            autocommit=True,
            options="-c TimeZone=UTC",
        )

    def query(self, url: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the database ``url`` names; return its rows (none for statements)."""
        connection = self.connect(url.rsplit("/", 1)[1])
        try:
            cursor = connection.execute(sql, params or None)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.resume()
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class MariaDBServer:
    """A MariaDB server made by mariadb-install-db in a temp dir; root without a password."""

    kind = "mysql"

    def __init__(self, mariadbd: str, install_db: str) -> None:
        self.mariadbd = mariadbd
        self.install_db = install_db
        self.port = _free_port()
        self.root = tempfile.mkdtemp(prefix="lct-my-")
        self.datadir = os.path.join(self.root, "data")
        self.socket = os.path.join(self.root, "mysqld.sock")
        self.logfile = os.path.join(self.root, "server.log")
        self.database = "lct"
        self._process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
        )
        _start_on_a_free_port(self)
        self.url = self.create_database(self.database)

    def url_for(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        with open(self.logfile, "ab") as log:
            self._process = subprocess.Popen(
                [
                    self.mariadbd,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.socket}",
                    f"--pid-file={os.path.join(self.root, 'mysqld.pid')}",
                    "--user=root",
                    "--skip-name-resolve",
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=64M",
                    "--innodb-log-file-size=48M",
                    "--innodb-flush-log-at-trx-commit=0",
                    "--innodb-doublewrite=0",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_bin",
                    "--max-connections=200",
                    "--max-allowed-packet=64M",
                ],
                stdout=log,
                stderr=log,
                cwd=self.root,
            )
        _wait_for_port(self.port, _START_TIMEOUT, self._process)

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self.resume()
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def pause(self) -> None:
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGCONT)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def connect(self, database: str | None = None) -> Any:
        """An autocommit PyMySQL connection to ``database`` (default: the session database)."""
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            database=database or self.database,
            autocommit=True,
            charset="utf8mb4",
        )

    def query(self, url: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the database ``url`` names; return its rows (none for statements)."""
        connection = self.connect(url.rsplit("/", 1)[1])
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
        finally:
            connection.close()
        return self.url_for(name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_bindir() -> str | None:
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (skips, or fails in CI, without the binaries)."""
    bindir = _postgres_bindir()
    if bindir is None:
        _missing("PostgreSQL (initdb/pg_ctl)")
    server = PostgresServer(bindir)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MariaDBServer]:
    """A throwaway MariaDB server for the session (skips, or fails in CI, without the binaries)."""
    mariadbd = shutil.which("mariadbd") or shutil.which("mysqld")
    if mariadbd is None and os.path.exists("/usr/sbin/mariadbd"):
        mariadbd = "/usr/sbin/mariadbd"
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if mariadbd is None or install_db is None:
        _missing("MariaDB (mariadbd/mariadb-install-db)")
    server = MariaDBServer(mariadbd, install_db)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/lct``: a database shared by the whole session."""
    return postgres_server.url


@pytest.fixture(scope="session")
def mysql_url(mysql_server: MariaDBServer) -> str:
    """``mysql://root@127.0.0.1:PORT/lct``: a database shared by the whole session."""
    return mysql_server.url


def _running(server: PostgresServer | MariaDBServer) -> None:
    # A fault test that failed half-way may have left the server stopped or paused.
    server.resume()
    if not server.is_running():
        server.start()


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty PostgreSQL database for one test."""
    _running(postgres_server)
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def fresh_mysql_url(mysql_server: MariaDBServer) -> str:
    """A new, empty MariaDB database for one test."""
    _running(mysql_server)
    return mysql_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


class SQLTarget:
    """A fresh database on one of the servers, for tests that run on both."""

    def __init__(self, dialect: str, url: str, server: PostgresServer | MariaDBServer) -> None:
        self.dialect = dialect
        self.url = url
        self.server = server

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return self.server.query(self.url, sql, params)

    def count(self, table: str = "llm_cost_tracker_calls") -> int:
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])

    def exporter(self, spool_dir: str | os.PathLike[str], **kwargs: Any) -> Any:
        if self.dialect == "postgres":
            from llm_cost_tracker.exporters.postgres import PostgresExporter

            return PostgresExporter(self.url, spool_dir=spool_dir, **kwargs)
        from llm_cost_tracker.exporters.mysql import MySQLExporter

        return MySQLExporter(self.url, spool_dir=spool_dir, **kwargs)


@pytest.fixture(params=["postgres", "mysql"])
def sql_target(request: pytest.FixtureRequest) -> SQLTarget:
    """A fresh PostgreSQL database, then a fresh MariaDB one (the test runs once on each)."""
    server: PostgresServer | MariaDBServer = request.getfixturevalue(f"{request.param}_server")
    _running(server)
    return SQLTarget(request.param, server.create_database(f"t_{uuid.uuid4().hex[:12]}"), server)
