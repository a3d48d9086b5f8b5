"""The operator CLI against the same storage as the running server."""

from __future__ import annotations

import json
import subprocess

from harness import Api, charge_point, iso, new_id, new_tag, refused_status, timedelta, utcnow


def test_help_documents_subcommands_and_flags(orderly_bin):
    top = subprocess.run([orderly_bin, "--help"], capture_output=True, text=True, timeout=30)
    assert top.returncode == 0, top.stderr
    for word in ("serve", "charger", "id-tag"):
        assert word in top.stdout, f"`orderly --help` does not mention {word}:\n{top.stdout}"
    serve = subprocess.run([orderly_bin, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert serve.returncode == 0, serve.stderr
    for flag in ("--listen", "--data-dir", "--database-url", "--config"):
        assert flag in serve.stdout, f"`orderly serve --help` does not mention {flag}"
    charger = subprocess.run([orderly_bin, "charger", "--help"], capture_output=True, text=True, timeout=30)
    assert charger.returncode == 0 and "add" in charger.stdout and "list" in charger.stdout


async def test_cli_charger_add_while_the_server_runs(server, api):
    cli_id, api_id = new_id("CLI"), new_id("API")
    await api.add_charger(api_id)
    server.cli("charger", "add", cli_id, "--password", "cli-password-123")
    status, _ = await refused_status(server, cli_id, password="not-the-password")
    assert status == 401
    async with charge_point(server, cli_id, password="cli-password-123") as cp:
        await cp.boot()
    listing = server.cli("charger", "list").stdout
    assert cli_id in listing and api_id in listing, listing
    assert cli_id in [c["id"] for c in Api.ok(await api.get("/chargers"))]
    # Operator commands from the shell are audited like API ones.
    audit = json.dumps(Api.ok(await api.get("/audit")))
    assert cli_id in audit, audit


async def test_cli_charger_add_before_first_start(server_factory):
    cp_id = new_id("CLI")

    def provision(srv):
        srv.cli("charger", "add", cp_id, "--password", "first-start-pass-1")

    srv = server_factory(before_start=provision)
    async with charge_point(srv, cp_id, password="first-start-pass-1") as cp:
        await cp.boot()


async def test_cli_charger_remove_refuses_later_connections(server, api):
    cp_id = new_id("GONE")
    await api.add_charger(cp_id)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
    server.cli("charger", "remove", cp_id)
    status, _ = await refused_status(server, cp_id)
    assert status == 404
    assert cp_id not in server.cli("charger", "list").stdout


async def test_cli_id_tags(server, api, cp_id):
    blocked, expired, parent, child = (new_tag(p) for p in ("BLK", "EXP", "PAR", "CHD"))
    server.cli("id-tag", "add", blocked, "--status", "Blocked")
    server.cli("id-tag", "add", expired, "--expiry", iso(utcnow() - timedelta(hours=1)))
    server.cli("id-tag", "add", parent)
    server.cli("id-tag", "add", child, "--parent", parent)
    listing = server.cli("id-tag", "list").stdout
    for tag in (blocked, expired, parent, child):
        assert tag in listing, listing
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(blocked))["status"] == "Blocked"
        assert (await cp.authorize(expired))["status"] == "Expired"
        info = await cp.authorize(child)
        assert info["status"] == "Accepted" and info.get("parent_id_tag") == parent


async def test_cli_rejects_bad_input(server):
    bad_status = server.cli("id-tag", "add", new_tag(), "--status", "Sometimes", check=False)
    assert bad_status.returncode != 0
    bad_id = server.cli("charger", "add", "has/slash", "--password", "x-password-123", check=False)
    assert bad_id.returncode != 0
