"""The server as a process and the gateway's connection lifecycle: bootstrap
token, configuration layering, graceful shutdown, dead-peer detection, and a
charger that reconnects before its old socket is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest

from harness import (
    Api,
    call,
    charge_point,
    new_id,
    open_ws,
    refused_status,
    silent_peer,
)


async def test_bootstrap_admin_token_is_printed_once_and_works(server_factory):
    first = server_factory(admin_token=None)
    assert first.printed_token, f"no 'admin token:' line on stdout: {first.stdout_lines}"
    api = Api(first)
    try:
        Api.ok(await api.get("/chargers"))
    finally:
        await api.aclose()
    token = first.printed_token
    first.stop()
    # Second start on the same storage: the token exists, nothing new is printed,
    # and the old token still opens the API.
    second = server_factory(admin_token=None, storage_of=first)
    assert second.printed_token is None, second.stdout_lines
    api = Api(second, token=token)
    try:
        Api.ok(await api.get("/chargers"))
    finally:
        await api.aclose()


async def test_config_file_then_env_then_flags(server_factory):
    toml = 'heartbeat_interval = 77\nunknown_chargers = "pending"\nlisten = "127.0.0.1:1"\n'

    def write_config(srv):
        (srv.data_dir / "orderly.toml").write_text(toml)

    # DATA_DIR/orderly.toml is read by default; --listen (a flag) beats its listen.
    srv = server_factory(before_start=write_config)
    async with charge_point(srv, new_id("NEW")) as cp:
        conf = await cp.boot(expect="Pending")  # unknown_chargers from the file
        assert conf.interval == 77
    srv.stop()
    # The environment beats the file.
    env_srv = server_factory(storage_of=srv, env={"ORDERLY_HEARTBEAT_INTERVAL": "88"})
    async with charge_point(env_srv, new_id("NEW")) as cp:
        assert (await cp.boot(expect="Pending")).interval == 88
    env_srv.stop()
    # An explicit --config file is used instead of the default one.
    other = env_srv.data_dir.parent / "other.toml"
    other.write_text('heartbeat_interval = 99\nunknown_chargers = "reject"\n')
    flag_srv = server_factory(storage_of=srv, extra_args=["--config", str(other)])
    async with charge_point(flag_srv, new_id("NEW")) as cp:
        conf = await cp.send(
            call.BootNotification(charge_point_vendor="OrderlyTest", charge_point_model="Sim-2")
        )
        assert (conf.status, conf.interval) == ("Rejected", 99)


async def test_sigterm_shuts_down_cleanly(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=0)
    assert server.stop(signal.SIGTERM) == 0


async def test_sigterm_with_chargers_still_connected(server, api, cp_id):
    """Chargers never hang up on their own: shutdown must not wait for them
    (Server.stop escalates to SIGKILL after 10 s, which would show as -9)."""
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=0)
        assert server.stop(signal.SIGTERM) == 0


async def test_dead_peer_is_detected_within_the_heartbeat_interval(server_factory):
    srv = server_factory(env={"ORDERLY_HEARTBEAT_INTERVAL": "2"})
    api = Api(srv)
    try:
        cp_id = new_id()
        await api.add_charger(cp_id)
        async with silent_peer(srv, cp_id):
            await api.wait_for("connected=true", lambda: connected(api, cp_id, True))
            # The peer never answers the server's Ping: after one interval of
            # silence (2 s) the server must drop it; 20 s is only the test's limit.
            await api.wait_for("dead peer dropped", lambda: connected(api, cp_id, False), timeout=20)
    finally:
        await api.aclose()


async def test_reconnect_before_the_old_socket_is_gone(server, api, cp_id):
    """A charger often reconnects before the server noticed the old link died:
    operations must reach the new connection, and the old one's cleanup must
    not unregister the new one."""
    old = await open_ws(server, cp_id)
    try:
        async with charge_point(server, cp_id) as cp:
            await cp.boot(connectors=0)
            await old.close()
            await cp.send(call.Heartbeat())  # let the server finish with the old socket
            assert (await api.charger(cp_id))["connected"] is True
            cp.answer("ClearCache", {"status": "Accepted"})
            assert await api.operation(cp_id, "ClearCache", {}) == {"status": "Accepted"}
    finally:
        await old.close()


async def connected(api: Api, cp_id: str, want: bool) -> bool:
    return (await api.charger(cp_id))["connected"] is want


@pytest.mark.parametrize(
    "env,key",
    [
        ({"ORDERLY_HEARTBEAT_INTERVAL": "0"}, "heartbeat_interval"),
        ({"ORDERLY_UNKNOWN_CHARGERS": "sometimes"}, "unknown_chargers"),
        ({"ORDERLY_LISTEN": "not-an-address"}, "listen"),
    ],
    ids=["zero-heartbeat", "bad-policy", "bad-listen"],
)
def test_bad_configuration_is_refused_at_start(orderly_bin, tmp_path, env, key):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    full_env.update(env)
    # --listen would override ORDERLY_LISTEN, so it is left out for that case.
    args = [orderly_bin, "serve", "--data-dir", str(tmp_path / "data")]
    if "ORDERLY_LISTEN" not in env:
        args += ["--listen", "127.0.0.1:0"]
    result = subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=60)
    assert result.returncode != 0, result.stdout
    assert "listening on" not in result.stdout
    assert key in result.stderr.lower(), f"the error should name {key}: {result.stderr}"


async def test_deleting_a_connected_charger_disconnects_it(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=0)
        Api.ok(await api.delete(f"/chargers/{cp_id}"), 200, 204)
        await asyncio.wait_for(cp._connection.wait_closed(), 15)
    status, _ = await refused_status(server, cp_id)
    assert status == 404
