"""WebSocket handshake: identity, subprotocol, Basic auth (security profile 1),
and the admission policy for unknown chargers (TC_085, TC_088)."""

from __future__ import annotations

from harness import (
    Api,
    call,
    charge_point,
    new_id,
    open_ws,
    refused_status,
)


async def test_unknown_charge_point_id_is_refused_with_404(server, api):
    status, _ = await refused_status(server, new_id("NOBODY"))
    assert status == 404


async def test_missing_subprotocol_is_refused_with_400(server, api):
    cp_id = new_id()
    await api.add_charger(cp_id)
    status, body = await refused_status(server, cp_id, subprotocols=[])
    assert status == 400
    assert "subprotocol" in body.lower() or "ocpp1.6" in body.lower(), body


async def test_tc_088_websocket_subprotocol_negotiation(server, api):
    cp_id = new_id()
    await api.add_charger(cp_id)
    # Only an unsupported subprotocol offered: refused before the upgrade.
    status, body = await refused_status(server, cp_id, subprotocols=["ocpp0.1"])
    assert status == 400, body
    # Unsupported first, supported second: the server picks ocpp1.6.
    async with charge_point(server, cp_id, subprotocols=["ocpp0.1", "ocpp1.6"]) as cp:
        await cp.boot()


async def test_tc_085_basic_authentication_valid_credentials(server, api):
    cp_id = new_id()
    await api.add_charger(cp_id, password="correct-horse-battery")
    status, _ = await refused_status(server, cp_id)  # no Authorization header
    assert status == 401
    async with charge_point(server, cp_id, password="correct-horse-battery") as cp:
        await cp.boot()


async def test_wrong_password_is_refused_with_401(server, api):
    cp_id = new_id()
    await api.add_charger(cp_id, password="correct-horse-battery")
    status, _ = await refused_status(server, cp_id, password="wrong-password-123")
    assert status == 401


async def test_password_may_contain_colons(server, api):
    """RFC 7617: the user id ends at the first colon; the password may hold more."""
    cp_id = new_id()
    await api.add_charger(cp_id, password="pa:ss:word-1234")
    async with charge_point(server, cp_id, password="pa:ss:word-1234") as cp:
        await cp.boot(connectors=0)
    status, _ = await refused_status(server, cp_id, password="pa:ss")
    assert status == 401


async def test_basic_auth_user_must_be_the_charge_point_id(server, api):
    a, b = new_id("A"), new_id("B")
    await api.add_charger(a, password="password-of-a-1234")
    await api.add_charger(b, password="password-of-b-1234")
    # Right password of A presented with B's user name on A's URL.
    from harness import basic_auth

    status, _ = await refused_status(server, a, headers=basic_auth(b, "password-of-a-1234"))
    assert status == 401


async def test_charger_without_password_needs_no_credentials(server, api):
    cp_id = new_id()
    await api.add_charger(cp_id)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()


async def test_unknown_charger_pending_policy_then_registered(server_factory):
    srv = server_factory(env={"ORDERLY_UNKNOWN_CHARGERS": "pending"})
    api = Api(srv)
    try:
        cp_id = new_id("NEW")
        async with charge_point(srv, cp_id) as cp:
            await cp.boot(expect="Pending")
            listed = {c["id"]: c for c in Api.ok(await api.get("/chargers"))}
            assert listed[cp_id]["status"] == "pending"
        # Registering a pending charger is the operator's POST /chargers; the
        # contract does not say whether that is a create (201) or an update (200).
        Api.ok(await api.post("/chargers", {"id": cp_id}), 200, 201)
        async with charge_point(srv, cp_id) as cp:
            await cp.boot(expect="Accepted")
        listed = {c["id"]: c for c in Api.ok(await api.get("/chargers"))}
        assert listed[cp_id]["status"] == "registered"
    finally:
        await api.aclose()


async def test_unknown_charger_reject_policy(server_factory):
    srv = server_factory(env={"ORDERLY_UNKNOWN_CHARGERS": "reject"})
    async with charge_point(srv, new_id("NEW")) as cp:
        conf = await cp.send(
            call.BootNotification(charge_point_vendor="OrderlyTest", charge_point_model="Sim-2")
        )
        assert conf.status == "Rejected"


async def test_connected_flag_follows_the_socket(server, api):
    cp_id = new_id()
    await api.add_charger(cp_id)
    assert (await api.charger(cp_id))["connected"] is False
    ws = await open_ws(server, cp_id)
    try:
        await api.wait_for("connected=true", lambda: _connected(api, cp_id, True))
    finally:
        await ws.close()
    await api.wait_for("connected=false", lambda: _connected(api, cp_id, False))


async def _connected(api: Api, cp_id: str, want: bool) -> bool:
    return (await api.charger(cp_id))["connected"] is want


async def test_secrets_are_stored_hashed(server, api):
    """Charger passwords (argon2) and the admin token are never stored in clear."""
    from harness import storage_dump

    cp_id = new_id()
    password = "plain-text-password-4711"
    await api.add_charger(cp_id, password=password)
    async with charge_point(server, cp_id, password=password) as cp:
        await cp.boot(connectors=0)
    dump = storage_dump(server)
    assert cp_id in dump, "the dump should at least contain the charger"
    assert password not in dump, "charger password stored in clear"
    assert server.admin_token not in dump, "admin token stored in clear"
    assert "$argon2" in dump, "no argon2 hash found in storage"


async def test_charge_point_id_with_a_colon_and_basic_auth(server, api):
    """Ids may contain ':' (the server's own id rule allows it), and with
    security profile 1 the Basic user name is that id. The server knows the id
    from the URL, so `id:password` can be split unambiguously; otherwise it must
    refuse to register such an id with a password, not accept it and then
    refuse every handshake with 401."""
    cp_id = f"{new_id('CP')}:1"
    created = await api.post("/chargers", {"id": cp_id, "password": "colon-id-pass-123"})
    if created.status_code == 400:
        assert "id" in created.json()["error"], created.text
        return
    assert created.status_code == 201, created.text
    async with charge_point(server, cp_id, password="colon-id-pass-123") as cp:
        await cp.boot(connectors=0)
