"""Fixtures: the real `orderly` binary on a fresh database per test, on SQLite
always and on PostgreSQL too when ORDERLY_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

from harness import Api, Server

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("ORDERLY_TEST_POSTGRES_URL", "").strip()
POSTGRES_SKIP_REASON = (
    "PostgreSQL variant skipped: ORDERLY_TEST_POSTGRES_URL is not set "
    "(e.g. postgres://postgres@127.0.0.1:5432/postgres)"
)


def default_binary() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or "target"
    path = Path(target)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path / "debug" / "orderly"


@pytest.fixture(scope="session")
def orderly_bin() -> str:
    path = Path(os.environ.get("ORDERLY_BIN") or default_binary())
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"orderly binary not found at {path}: build it with `cargo build -p orderly-server` "
            "or set ORDERLY_BIN",
            pytrace=False,
        )
    return str(path)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=pytest.mark.skipif(not POSTGRES_URL, reason=POSTGRES_SKIP_REASON),
        ),
    ]
)
def backend(request) -> str:
    return request.param


class PostgresDatabases:
    """One throw-away database per server storage, dropped at teardown."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self) -> str:
        import psycopg
        from psycopg import sql

        name = f"orderly_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def drop_all(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.created.clear()


@pytest.fixture
def server_factory(request, orderly_bin, backend, tmp_path):
    """start(env=, storage_of=, before_start=, admin_token=, extra_args=) → a running Server.

    Each call gets fresh storage unless `storage_of` names a server whose data
    directory / database it should share (restart and CLI tests).
    """
    servers: list[Server] = []
    request.node._orderly_servers = servers
    pg = PostgresDatabases(POSTGRES_URL) if backend == "postgres" else None

    def start(
        env: dict[str, str] | None = None,
        storage_of: Server | None = None,
        before_start: Callable[[Server], None] | None = None,
        admin_token: str | None | bool = True,
        extra_args: list[str] | None = None,
    ) -> Server:
        if storage_of is not None:
            data_dir, db_url = storage_of.data_dir, storage_of.database_url
        else:
            data_dir = tmp_path / f"data{len(servers)}"
            db_url = pg.create() if pg else None
        srv = Server(
            binary=orderly_bin,
            data_dir=data_dir,
            database_url=db_url,
            # True: a fresh random token through ORDERLY_ADMIN_TOKEN; None: none, so the
            # server bootstraps and prints its own; a string: that token.
            admin_token=f"test-admin-{secrets.token_hex(16)}" if admin_token is True else admin_token,
            env_extra=dict(env or {}),
            extra_args=list(extra_args or []),
        )
        servers.append(srv)
        if before_start is not None:
            srv.data_dir.mkdir(parents=True, exist_ok=True)
            before_start(srv)
        srv.start()
        return srv

    yield start
    for srv in servers:
        srv.stop()
    if pg:
        pg.drop_all()


@pytest.fixture
def server(server_factory) -> Server:
    return server_factory()


@pytest.fixture
async def api(server):
    client = Api(server)
    yield client
    await client.aclose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for i, srv in enumerate(getattr(item, "_orderly_servers", [])):
            report.sections.append((f"orderly server {i} log", srv.log_tail()))
    return report


def pytest_report_header(config):
    return [
        f"orderly binary: {os.environ.get('ORDERLY_BIN') or default_binary()}",
        "backends: sqlite"
        + (", postgres (ORDERLY_TEST_POSTGRES_URL)" if POSTGRES_URL else f" only — {POSTGRES_SKIP_REASON}"),
    ]


def pytest_terminal_summary(terminalreporter):
    if not POSTGRES_URL:
        terminalreporter.write_sep("=", POSTGRES_SKIP_REASON, yellow=True)


@pytest.fixture
async def cp_id(api) -> str:
    """A registered charger (no password) with a fresh id."""
    from harness import new_id

    charger_id = new_id()
    await api.add_charger(charger_id)
    return charger_id


@pytest.fixture
async def tag(api) -> str:
    """An Accepted id tag."""
    from harness import new_tag

    id_tag = new_tag("OK")
    await api.add_tag(id_tag, "Accepted")
    return id_tag
