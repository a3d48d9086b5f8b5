"""Charger-initiated behaviour: boot, heartbeat, authorization, and the OCA
"pure CP" Core conformance cases (the charge point drives, the CSMS answers)."""

from __future__ import annotations

import asyncio

import httpx

from harness import (
    Api,
    call,
    charge_point,
    collect,
    new_id,
    new_tag,
    parse_ts,
    same_instant,
    timedelta,
    utcnow,
)


def close_to_now(value: str, slack_s: float = 120) -> bool:
    return abs((parse_ts(value) - utcnow()).total_seconds()) <= slack_s


async def connector_status(api: Api, cp_id: str, connector: int) -> dict:
    rows = {c["connector_id"]: c for c in await api.connectors(cp_id)}
    assert connector in rows, f"connector {connector} not listed: {rows}"
    return rows[connector]


# ---------------------------------------------------------------- boot


async def test_boot_and_heartbeat(server_factory):
    srv = server_factory(env={"ORDERLY_HEARTBEAT_INTERVAL": "120"})
    api = Api(srv)
    try:
        cp_id = new_id()
        await api.add_charger(cp_id)
        async with charge_point(srv, cp_id) as cp:
            boot = await cp.boot(connectors=0)
            assert boot.interval == 120
            assert close_to_now(boot.current_time)
            beat = await cp.send(call.Heartbeat())
            assert close_to_now(beat.current_time)
            info = await api.charger(cp_id)
            assert info["connected"] is True
            assert info["status"] == "registered"
            assert info["vendor"] == "OrderlyTest"
            assert info["model"] == "Sim-2"
            assert info["serial_number"] in (f"SN-{cp_id}", f"BOX-{cp_id}")
            assert info["firmware_version"] == "1.2.3"
            assert info["last_seen"] and close_to_now(info["last_seen"])
    finally:
        await api.aclose()


async def test_tc_001_cold_boot(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=2)  # BootNotification + StatusNotification 0, 1, 2
        beat = await cp.send(call.Heartbeat())
        assert close_to_now(beat.current_time)
    for connector in (1, 2):
        row = await connector_status(api, cp_id, connector)
        assert row["status"] == "Available"
        assert row["error_code"] == "NoError"


async def test_concurrent_first_status_notifications(server, api):
    """Lesson L15: first-time connector rows created by many chargers at once
    must not surface as InternalError."""
    ids = [new_id("PAR") for _ in range(8)]
    for cp_id in ids:
        await api.add_charger(cp_id)

    async def one(cp_id: str) -> None:
        async with charge_point(server, cp_id) as cp:
            await cp.boot(connectors=2)

    await collect([one(cp_id) for cp_id in ids])
    for cp_id in ids:
        assert (await connector_status(api, cp_id, 2))["status"] == "Available"


async def test_every_charger_initiated_action_gets_a_conf(server, api, cp_id):
    """Lesson L8: FirmwareStatusNotification & co. get a .conf, never NotSupported."""
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        for status in (
            "Downloaded",
            "DownloadFailed",
            "Downloading",
            "Idle",
            "InstallationFailed",
            "Installing",
            "Installed",
        ):
            await cp.send(call.FirmwareStatusNotification(status=status))
        for status in ("Idle", "Uploaded", "UploadFailed", "Uploading"):
            await cp.send(call.DiagnosticsStatusNotification(status=status))
        for status in (
            "Available",
            "Preparing",
            "Charging",
            "SuspendedEVSE",
            "SuspendedEV",
            "Finishing",
            "Reserved",
            "Unavailable",
        ):
            await cp.status(1, status)
        await cp.status(
            1, "Faulted", error_code="GroundFailure", info="test", vendor_id="x", vendor_error_code="E42"
        )
        await cp.send(call.Heartbeat())
    assert (await connector_status(api, cp_id, 1))["error_code"] == "GroundFailure"


# ---------------------------------------------------------------- authorization


async def test_authorize_accepted(server, api, cp_id, tag):
    until = utcnow() + timedelta(days=30)
    limited = new_tag("LIM")
    await api.add_tag(limited, "Accepted", expiry=until)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(tag))["status"] == "Accepted"
        info = await cp.authorize(limited)
        # The expiry goes to the charger so its authorization cache drops the tag in time.
        assert info["status"] == "Accepted"
        assert info.get("expiry_date") and same_instant(info["expiry_date"], until), info


async def test_authorize_with_parent_id_tag(server, api, cp_id):
    parent, child = new_tag("PAR"), new_tag("CHD")
    await api.add_tag(parent)
    await api.add_tag(child, parent=parent)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        info = await cp.authorize(child)
        assert info["status"] == "Accepted"
        assert info.get("parent_id_tag") == parent


async def test_tc_023_1_authorize_invalid(server, api, cp_id):
    unknown = new_tag("UNK")
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(unknown))["status"] == "Invalid"
    # The TCK's extra check: an Authorize alone creates no transaction.
    assert await api.transactions(charger_id=cp_id) == []


async def test_tc_023_2_authorize_expired(server, api, cp_id):
    past = new_tag("EXP")
    await api.add_tag(past, "Accepted", expiry=utcnow() - timedelta(days=1))
    marked = new_tag("EXS")
    await api.add_tag(marked, "Expired")
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(past))["status"] == "Expired"
        assert (await cp.authorize(marked))["status"] == "Expired"


async def test_tc_023_3_authorize_blocked(server, api, cp_id):
    blocked = new_tag("BLK")
    await api.add_tag(blocked, "Blocked")
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(blocked))["status"] == "Blocked"


async def test_id_tag_status_change_takes_effect(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(tag))["status"] == "Accepted"
        Api.ok(await api.put(f"/id-tags/{tag}", {"status": "Blocked"}), 200, 204)
        assert (await cp.authorize(tag))["status"] == "Blocked"
        Api.ok(await api.delete(f"/id-tags/{tag}"), 200, 204)
        assert (await cp.authorize(tag))["status"] == "Invalid"


# ---------------------------------------------------------------- charging sessions


async def test_tc_003_regular_charging_session_plugin_first(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await cp.status(1, "Preparing")
        assert (await cp.authorize(tag))["status"] == "Accepted"
        tx_id = await cp.start_tx(tag, connector=1, meter_start=0)
        await cp.status(1, "Charging")
        active = await api.transactions(charger_id=cp_id, active=True)
        assert [t["id"] for t in active] == [tx_id]
        assert active[0]["id_tag"] == tag and active[0]["connector_id"] == 1
        assert (await connector_status(api, cp_id, 1))["status"] == "Charging"
        # The TCK goes on to the end of the session: a closed transaction with the tag.
        await cp.meter(1, tx_id, [(utcnow(), 1500)])
        await cp.stop_tx(tx_id, 3000, reason="Local", id_tag=tag)
        await cp.status(1, "Finishing")
        await cp.status(1, "Available")
    done = await api.transaction(tx_id)
    assert done["id_tag"] == tag
    assert done["stopped_at"] is not None
    assert done["energy_wh"] == 3000


async def test_tc_004_1_regular_charging_session_identification_first(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag)
    assert (await api.transaction(tx_id))["stopped_at"] is None


async def test_tc_004_2_identification_first_connection_timeout(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(tag))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        # The cable was never plugged in: ConnectionTimeOut later (as SteVe,
        # stamped in the future rather than waited for).
        await cp.status(1, "Available", timestamp=utcnow() + timedelta(seconds=5))
    assert await api.transactions(charger_id=cp_id) == []
    assert (await connector_status(api, cp_id, 1))["status"] == "Available"


async def test_tc_005_1_ev_side_disconnected(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag, meter_start=0)
        await cp.status(1, "SuspendedEV")
        conf = await cp.stop_tx(tx_id, 10, reason="EVDisconnected", id_tag=tag)
        assert conf.id_tag_info is not None, "idTag was given, so idTagInfo is expected"
        assert conf.id_tag_info["status"] == "Accepted"
        await cp.status(1, "Finishing")
        await cp.status(1, "Available")
    done = await api.transaction(tx_id)
    assert done["stop_reason"] == "EVDisconnected"
    assert done["meter_stop_wh"] == 10 and done["energy_wh"] == 10


async def test_tc_007_regular_start_charging_session_cached_id(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await cp.status(1, "Preparing")
        tx_id = await cp.start_tx(tag)  # no Authorize: the id was in the local cache
        await cp.status(1, "Charging")
    assert (await api.transaction(tx_id))["id_tag"] == tag


async def test_tc_024_start_charging_session_lock_failure(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(tag))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        await cp.status(1, "Faulted", error_code="ConnectorLockFailure")
        row = await connector_status(api, cp_id, 1)
        assert (row["status"], row["error_code"]) == ("Faulted", "ConnectorLockFailure")
        await cp.status(1, "Available")
    history = [(h.get("connector_id"), h["status"]) for h in await api.status_history(cp_id)]
    assert (1, "Faulted") in history and (1, "Preparing") in history, history
    assert await api.transactions(charger_id=cp_id) == []


async def test_tc_032_1_power_failure_boot_stop_transactions(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag, meter_start=100)
    # Power came back: a new connection, a new boot, then the stop of the old session.
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=0)
        await cp.status(0, "Available")
        await cp.status(1, "Finishing")
        await cp.status(2, "Available")
        await cp.stop_tx(tx_id, 400, reason="PowerLoss")
    done = await api.transaction(tx_id)
    assert done["stop_reason"] == "PowerLoss"
    assert done["energy_wh"] == 300


async def test_tc_037_1_offline_start_transaction_valid_idtag(server, api, cp_id, tag):
    started = utcnow() - timedelta(hours=4)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.start_tx(tag, timestamp=started)
        await cp.status(1, "Charging", timestamp=started)
    assert same_instant((await api.transaction(tx_id))["started_at"], started)


async def test_tc_037_3_offline_start_invalid_idtag_stop_on_invalid_id(server, api, cp_id):
    """Lesson L12: the unknown tag's transaction is still recorded."""
    unknown = new_tag("UNK")
    started = utcnow() - timedelta(hours=4)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.start_tx(unknown, timestamp=started, meter_start=50, expect="Invalid")
        await cp.status(1, "Charging", timestamp=started)
        await cp.stop_tx(tx_id, 70, reason="DeAuthorized", timestamp=started + timedelta(seconds=30))
        await cp.status(1, "Finishing")
    done = await api.transaction(tx_id)
    assert done["id_tag"] == unknown
    assert done["stop_reason"] == "DeAuthorized"
    assert done["energy_wh"] == 20


async def test_tc_039_offline_transaction(server, api, cp_id, tag):
    started = utcnow() - timedelta(hours=4)
    stopped = utcnow() - timedelta(hours=3)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.start_tx(tag, timestamp=started, meter_start=1000)
        await cp.stop_tx(tx_id, 4500, reason="Local", timestamp=stopped)
    done = await api.transaction(tx_id)
    assert same_instant(done["started_at"], started)
    assert same_instant(done["stopped_at"], stopped)
    assert (done["stop_reason"], done["energy_wh"]) == ("Local", 3500)


async def test_tc_064_data_transfer_to_central_system(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        conf = await cp.send(call.DataTransfer(vendor_id="com.example.unknown", message_id="Ping", data="{}"))
    # OCA allows Rejected/UnknownMessageId/UnknownVendorId; the contract (and
    # lesson L10) picks UnknownVendorId for a vendor the platform does not know.
    assert conf.status == "UnknownVendorId"


async def test_status_history_is_kept_in_order(server, api, cp_id):
    base = utcnow() - timedelta(minutes=10)
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=0)
        for i, status in enumerate(("Preparing", "Charging", "Finishing", "Available")):
            await cp.status(1, status, timestamp=base + timedelta(seconds=i))
    rows = [h for h in await api.status_history(cp_id) if h.get("connector_id") == 1]
    statuses = [h["status"] for h in rows]
    # Newest-first or oldest-first is the server's choice; the order must be by time.
    assert statuses in (
        ["Preparing", "Charging", "Finishing", "Available"],
        ["Available", "Finishing", "Charging", "Preparing"],
    ), statuses


async def test_charger_messages_are_counted_in_metrics(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=0)
        await cp.send(call.Heartbeat())
        async with httpx.AsyncClient() as plain:  # /metrics needs no token
            text = (await plain.get(f"{server.http_base}/metrics")).text
    assert "orderly_connected_chargers" in text
    assert "orderly_ocpp_messages_total" in text
    assert 'action="BootNotification"' in text and 'action="Heartbeat"' in text
    assert "orderly_ocpp_handling_seconds" in text


async def test_message_counter_counts_each_message(server, api, cp_id):
    def heartbeat_series(text: str) -> dict[str, float]:
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("orderly_ocpp_messages_total") and 'action="Heartbeat"' in line
        }

    async with httpx.AsyncClient(base_url=server.http_base) as plain:
        async with charge_point(server, cp_id) as cp:
            await cp.boot(connectors=0)
            await cp.send(call.Heartbeat())
            before = heartbeat_series((await plain.get("/metrics")).text)
            for _ in range(3):
                await cp.send(call.Heartbeat())
            after = heartbeat_series((await plain.get("/metrics")).text)
    grew = {k: after[k] - before.get(k, 0.0) for k in after}
    assert grew and all(delta == 3 for delta in grew.values()), (before, after)


async def test_no_unsolicited_calls_after_boot(server, api, cp_id):
    """Lesson L3: OCTT fails a CSMS that sends what the case does not expect
    (e.g. a GetConfiguration right after boot). Every test's charge point
    fails on an unscripted CALL; this one also leaves a quiet window after boot."""
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=2)
        await cp.send(call.Heartbeat())
        await asyncio.sleep(0.5)  # a negative check: a correct server passes regardless of timing
        assert cp.received == [], cp.received


async def test_replayed_old_status_does_not_override_a_newer_one(server, api, cp_id):
    """A charger replaying its queue after a reconnect can deliver an old
    StatusNotification after a newer one; the connector's status is the newest
    by the charger's timestamp, and the old report still enters the history."""
    now = utcnow()
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=1)
        await cp.status(1, "Available", timestamp=now)
        await cp.status(1, "Charging", timestamp=now - timedelta(minutes=10))
    assert (await connector_status(api, cp_id, 1))["status"] == "Available"
    history = [(h["connector_id"], h["status"]) for h in await api.status_history(cp_id)]
    assert (1, "Charging") in history, history
