"""Transactions and meter values: nothing lost, nothing counted twice, across
reconnects, replays and a server crash."""

from __future__ import annotations

import asyncio
import json

import websockets

from harness import (
    EVENT_TIMEOUT,
    Api,
    call,
    charge_point,
    collect,
    energy_sample,
    iso,
    new_id,
    new_tag,
    parse_ts,
    raw_link,
    same_instant,
    silent_peer,
    timedelta,
    utcnow,
)

ENERGY = "Energy.Active.Import.Register"


def series(rows: list[dict], measurand: str = ENERGY) -> list[tuple]:
    """(timestamp, value) of one measurand, in the order the API returned them."""
    out = []
    for row in rows:
        # Per OCPP a sampled value without measurand is the energy register;
        # signed meter data is not a number.
        if row.get("format") == "SignedData":
            continue
        if (row.get("measurand") or ENERGY) == measurand:
            out.append((parse_ts(row["timestamp"]), float(row["value"])))
    return out


def assert_time_ordered(rows: list[dict]) -> None:
    stamps = [parse_ts(r["timestamp"]) for r in rows]
    assert stamps == sorted(stamps), f"meter values not in time order: {[r['timestamp'] for r in rows]}"


async def test_full_transaction_with_meter_values(server, api, cp_id, tag):
    t0 = utcnow() - timedelta(minutes=10)
    at = lambda minutes: t0 + timedelta(minutes=minutes)  # noqa: E731
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await cp.authorize(tag))["status"] == "Accepted"
        await cp.status(1, "Preparing", timestamp=t0)
        tx_id = await cp.start_tx(tag, connector=1, meter_start=1000, timestamp=t0)
        await cp.status(1, "Charging", timestamp=t0)
        assert tx_id in [t["id"] for t in await api.transactions(charger_id=cp_id, active=True)]
        for minute, wh, watts in ((1, 2000, 7000), (2, 3500, 7100), (3, 5000, 7200)):
            sample = energy_sample(at(minute), wh)
            sample["sampledValue"].append(
                {
                    "value": str(watts),
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                    "context": "Sample.Periodic",
                }
            )
            await cp.send(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[sample]))
        conf = await cp.stop_tx(
            tx_id,
            8500,
            reason="Local",
            id_tag=tag,
            timestamp=at(4),
            transaction_data=[energy_sample(at(4), 8500, context="Transaction.End")],
        )
        assert conf.id_tag_info["status"] == "Accepted"
        await cp.status(1, "Finishing", timestamp=at(4))
        await cp.status(1, "Available", timestamp=at(4))

    done = await api.transaction(tx_id)
    assert done["charger_id"] == cp_id and done["connector_id"] == 1 and done["id_tag"] == tag
    assert (done["meter_start_wh"], done["meter_stop_wh"]) == (1000, 8500)
    assert done["energy_wh"] == 8500 - 1000
    assert same_instant(done["started_at"], t0) and same_instant(done["stopped_at"], at(4))
    assert done["stop_reason"] == "Local"
    assert tx_id not in [t["id"] for t in await api.transactions(charger_id=cp_id, active=True)]
    assert tx_id in [t["id"] for t in await api.transactions(charger_id=cp_id, active=False)]

    rows = await api.meter_values(tx_id)
    assert_time_ordered(rows)
    assert [v for _, v in series(rows)] == [2000, 3500, 5000, 8500]
    assert [v for _, v in series(rows, "Power.Active.Import")] == [7000, 7100, 7200]
    power = [r for r in rows if r.get("measurand") == "Power.Active.Import"]
    assert all(r["unit"] == "W" for r in power)


async def test_reconnect_replays_offline_queue_without_duplicates(server, api, cp_id, tag):
    t0 = utcnow() - timedelta(minutes=30)
    at = lambda minutes: t0 + timedelta(minutes=minutes)  # noqa: E731

    # Connection 1: the start reaches the server, then the link drops.
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.start_tx(tag, connector=1, meter_start=10_000, timestamp=t0)

    # Connection 2: the charger did not get the .conf in time, so it replays its
    # whole queue: the same StartTransaction, meter values out of order, the stop.
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        again = await cp.start_tx(tag, connector=1, meter_start=10_000, timestamp=t0)
        assert again == tx_id, "a replayed StartTransaction must return the same transactionId"
        await cp.meter(1, tx_id, [(at(3), 13_000)])
        await cp.meter(1, tx_id, [(at(1), 11_000)])
        await cp.meter(1, tx_id, [(at(2), 12_000)])
        await cp.meter(1, tx_id, [(at(5), 15_000), (at(4), 14_000)])
        stop = dict(
            reason="Local",
            id_tag=tag,
            timestamp=at(6),
            transaction_data=[energy_sample(at(6), 16_000, context="Transaction.End")],
        )
        await cp.stop_tx(tx_id, 16_000, **stop)

    # Connection 3: the confirmations of connection 2 were lost too; replay again.
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert await cp.start_tx(tag, connector=1, meter_start=10_000, timestamp=t0) == tx_id
        await cp.meter(1, tx_id, [(at(3), 13_000)])
        await cp.meter(1, tx_id, [(at(1), 11_000)])
        await cp.stop_tx(tx_id, 16_000, **stop)
        # A genuinely new session with otherwise equal fields gets a new id.
        later = await cp.start_tx(tag, connector=1, meter_start=10_000, timestamp=at(20))
        assert later != tx_id

    txs = await api.transactions(charger_id=cp_id)
    assert sorted(t["id"] for t in txs) == sorted([tx_id, later]), txs
    done = await api.transaction(tx_id)
    assert (done["meter_start_wh"], done["meter_stop_wh"], done["energy_wh"]) == (10_000, 16_000, 6_000)
    assert same_instant(done["stopped_at"], at(6))
    rows = await api.meter_values(tx_id)
    assert_time_ordered(rows)
    assert series(rows) == [(at(m), 10_000.0 + 1000 * m) for m in range(1, 7)], series(rows)


async def test_stop_for_a_transaction_the_server_never_saw_is_recorded(server, api, cp_id, tag):
    stopped = utcnow() - timedelta(minutes=5)
    unknown_tx = 900_000_001
    stop = dict(
        reason="Local",
        id_tag=tag,
        timestamp=stopped,
        transaction_data=[
            energy_sample(stopped - timedelta(minutes=1), 4_000),
            energy_sample(stopped, 5_000, context="Transaction.End"),
        ],
    )
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        conf = await cp.stop_tx(unknown_tx, 5_000, **stop)
        if conf.id_tag_info is not None:
            assert conf.id_tag_info["status"] == "Accepted"
        await cp.stop_tx(unknown_tx, 5_000, **stop)  # replayed: still one record

    txs = await api.transactions(charger_id=cp_id)
    assert len(txs) == 1, txs
    rec = await api.transaction(txs[0]["id"])
    assert rec["meter_stop_wh"] == 5_000
    assert same_instant(rec["stopped_at"], stopped)
    assert rec["stop_reason"] == "Local"
    assert [v for _, v in series(await api.meter_values(rec["id"]))] == [4_000, 5_000]


async def test_acknowledged_transaction_survives_a_server_crash(server_factory):
    first = server_factory()
    api = Api(first)
    cp_id = new_id()
    tag = "CRASHTAG"
    await api.add_charger(cp_id)
    await api.add_tag(tag)
    t0 = utcnow() - timedelta(minutes=3)
    async with charge_point(first, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.start_tx(tag, meter_start=500, timestamp=t0)
        await cp.meter(1, tx_id, [(t0 + timedelta(minutes=1), 700)])
        # Everything acknowledged is committed: a SIGKILL right now loses nothing.
        first.crash()
    await api.aclose()

    second = server_factory(storage_of=first)
    api = Api(second)
    try:
        async with charge_point(second, cp_id) as cp:
            await cp.boot()
            # The start's .conf may have been lost in the crash: its replay still
            # maps to the committed transaction.
            assert await cp.start_tx(tag, meter_start=500, timestamp=t0) == tx_id
            await cp.stop_tx(tx_id, 1_400, reason="Local", timestamp=t0 + timedelta(minutes=2))
        done = await api.transaction(tx_id)
        assert (done["meter_start_wh"], done["energy_wh"]) == (500, 900)
        assert 700 in [v for _, v in series(await api.meter_values(tx_id))]
    finally:
        await api.aclose()


async def test_identical_starts_on_different_chargers_get_distinct_ids(server, api, tag):
    ids = [new_id("PAR") for _ in range(4)]
    for cp_id in ids:
        await api.add_charger(cp_id)
    stamp = utcnow() - timedelta(minutes=1)

    async def session(cp_id: str) -> int:
        async with charge_point(server, cp_id) as cp:
            await cp.boot(connectors=1)
            tx = await cp.start_tx(tag, connector=1, meter_start=0, timestamp=stamp)
            await cp.stop_tx(tx, 250, reason="Local", timestamp=stamp + timedelta(seconds=30))
            return tx

    txs = await collect([session(cp_id) for cp_id in ids])
    assert len(set(txs)) == len(ids), f"transaction ids collide across chargers: {txs}"
    for cp_id, tx in zip(ids, txs, strict=True):
        done = await api.transaction(tx)
        assert (done["charger_id"], done["energy_wh"]) == (cp_id, 250)


async def test_meter_values_outside_a_transaction_are_accepted(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=1)
        await cp.meter(1, None, [(utcnow(), 123)], context="Sample.Clock")
        await cp.meter(0, None, [(utcnow(), 456)], context="Sample.Clock")
    assert await api.transactions(charger_id=cp_id) == []


async def test_unknown_transaction_id_in_api_is_404(server, api):
    assert (await api.get("/transactions/987654321")).status_code == 404


async def test_meter_values_for_an_unknown_transaction_are_acknowledged(server, api, cp_id):
    """A charger may report samples for a transaction id the server does not
    know (it was issued before a restore, or its Start is still queued behind
    them). A CALLERROR would make the charger retry the message forever."""
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=1)
        await cp.meter(1, 424_242, [(utcnow() - timedelta(minutes=1), 100), (utcnow(), 200)])


async def test_three_phase_samples_at_one_instant_are_all_kept(server, api, cp_id, tag):
    stamp = utcnow() - timedelta(minutes=1)
    sample = {
        "timestamp": iso(stamp),
        "sampledValue": [
            {"value": value, "measurand": "Current.Import", "phase": phase, "unit": "A"}
            for phase, value in (("L1", "15.9"), ("L2", "16.0"), ("L3", "16.1"))
        ]
        + [
            {"value": "3000", "measurand": ENERGY, "unit": "Wh"},
            {"value": "3A0F", "format": "SignedData", "context": "Sample.Clock"},
        ],
    }
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=1)
        tx_id = await cp.start_tx(tag, meter_start=1000, timestamp=stamp - timedelta(minutes=5))
        for _ in range(2):  # the second is a replay: nothing new
            await cp.send(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[sample]))
    rows = await api.meter_values(tx_id)
    currents = sorted((r["phase"], float(r["value"])) for r in rows if r["measurand"] == "Current.Import")
    assert currents == [("L1", 15.9), ("L2", 16.0), ("L3", 16.1)], rows
    assert [v for _, v in series(rows)] == [3000], rows
    signed = [r for r in rows if r.get("format") == "SignedData"]
    assert len(signed) == 1 and signed[0]["value"] == "3A0F", rows
    assert len(rows) == 5, rows


async def test_timestamps_with_a_utc_offset_are_the_same_instant(server, api, cp_id, tag):
    """Beijing chargers may stamp local time with +08:00."""
    from datetime import timezone as tz

    beijing = tz(timedelta(hours=8))
    started = (utcnow() - timedelta(hours=2)).astimezone(beijing)
    stopped = started + timedelta(minutes=45)
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=1)
        conf = await cp.send(
            call.StartTransaction(connector_id=1, id_tag=tag, meter_start=0, timestamp=started.isoformat())
        )
        tx_id = conf.transaction_id
        await cp.send(
            call.StopTransaction(
                transaction_id=tx_id, meter_stop=9000, timestamp=stopped.isoformat(), reason="Local"
            )
        )
    done = await api.transaction(tx_id)
    assert same_instant(done["started_at"], started) and same_instant(done["stopped_at"], stopped), done


async def test_start_with_a_refused_tag_is_still_recorded(server, api, cp_id):
    blocked, expired = new_tag("BLK"), new_tag("EXP")
    await api.add_tag(blocked, "Blocked")
    await api.add_tag(expired, "Accepted", expiry=utcnow() - timedelta(days=2))
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_blocked = await cp.start_tx(blocked, connector=1, expect="Blocked")
        tx_expired = await cp.start_tx(expired, connector=2, expect="Expired")
        await cp.stop_tx(tx_blocked, 10, reason="DeAuthorized")
        await cp.stop_tx(tx_expired, 20, reason="DeAuthorized")
    assert tx_blocked != tx_expired
    assert (await api.transaction(tx_blocked))["id_tag"] == blocked
    assert (await api.transaction(tx_expired))["energy_wh"] == 20


async def test_many_chargers_charging_at_once(server, api, tag):
    """Concurrent writers (SQLite's classic 'database is locked') must never
    surface as a CALLERROR, and every session keeps its own numbers."""
    ids = [new_id("LOAD") for _ in range(16)]
    for cp_id in ids:
        await api.add_charger(cp_id)
    t0 = utcnow() - timedelta(minutes=30)

    async def session(n: int, cp_id: str) -> int:
        async with charge_point(server, cp_id) as cp:
            await cp.boot(connectors=1)
            tx = await cp.start_tx(tag, meter_start=n, timestamp=t0)
            for minute in range(1, 6):
                await cp.meter(1, tx, [(t0 + timedelta(minutes=minute), n + 100 * minute)])
            await cp.stop_tx(tx, n + 1000, reason="Local", timestamp=t0 + timedelta(minutes=6))
            return tx

    txs = await collect([session(n, cp_id) for n, cp_id in enumerate(ids)])
    assert len(set(txs)) == len(ids)
    for n, tx in enumerate(txs):
        done = await api.transaction(tx)
        assert done["energy_wh"] == 1000
        assert [v for _, v in series(await api.meter_values(tx))] == [n + 100 * m for m in range(1, 6)]


async def test_long_session_stop_with_full_transaction_data_is_recorded(server, api, cp_id, tag):
    """A charger configured with StopTxnSampledData sends the whole session in
    StopTransaction.transactionData: 10 h at one sample a minute of energy,
    power and three phase currents is ~330 KB of JSON. If the server cannot
    take it, the charger retries the same message forever and the transaction
    is lost; refusing it is only acceptable with close code 1009 (RFC 6455)."""
    t0 = utcnow() - timedelta(hours=11)
    data = []
    for minute in range(600):
        ts = iso(t0 + timedelta(minutes=minute + 1))
        data.append(
            {
                "timestamp": ts,
                "sampledValue": [
                    {
                        "value": str(1000 + 120 * minute),
                        "measurand": ENERGY,
                        "unit": "Wh",
                        "context": "Sample.Periodic",
                    },
                    {
                        "value": "7200",
                        "measurand": "Power.Active.Import",
                        "unit": "W",
                        "context": "Sample.Periodic",
                    },
                ]
                + [
                    {
                        "value": "10.4",
                        "measurand": "Current.Import",
                        "phase": p,
                        "unit": "A",
                        "context": "Sample.Periodic",
                    }
                    for p in ("L1", "L2", "L3")
                ],
            }
        )
    stop = {
        "transactionId": None,
        "meterStop": 1000 + 120 * 600,
        "timestamp": iso(t0 + timedelta(hours=10, minutes=1)),
        "reason": "EVDisconnected",
        "transactionData": data,
    }
    # Raw frames: the failure mode is the connection itself, which the raw link reports
    # directly instead of as a response timeout.
    async with raw_link(server, cp_id) as link:
        await link.boot()
        start = await link.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": iso(t0)},
        )
        tx_id = start[2]["transactionId"]
        stop["transactionId"] = tx_id
        text = json.dumps([2, "long-stop", "StopTransaction", stop])
        await link.send_text(text)
        try:
            reply = await link.reply_to("long-stop")
        except websockets.ConnectionClosed:
            close = link.ws.close_code
            assert close == 1009, (
                f"a {len(text) // 1024} KiB StopTransaction got no answer: the connection ended with "
                f"close code {close}; 1009 (message too big) is the least a refusal owes the charger, "
                "and then the transaction is lost anyway"
            )
            return
        assert reply[0] == 3, reply[:4]
    done = await api.transaction(tx_id)
    assert done["energy_wh"] == 120 * 600
    assert len(series(await api.meter_values(tx_id))) == 600


async def test_stop_sent_just_before_the_charger_hangs_up_is_recorded(server, api, cp_id, tag):
    """TC_013 as the TCK's simulator does it: StopTransaction(HardReset), then
    the socket closes before the answer can arrive. The server got the message,
    so the transaction must be closed anyway."""
    t0 = utcnow() - timedelta(minutes=20)
    async with raw_link(server, cp_id) as link:
        await link.boot()
        start = await link.call(
            "StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": iso(t0)}
        )
        tx_id = start[2]["transactionId"]
        stop = {
            "transactionId": tx_id,
            "meterStop": 4321,
            "timestamp": iso(t0 + timedelta(minutes=10)),
            "reason": "HardReset",
        }
        await link.send_text(json.dumps([2, "last-words", "StopTransaction", stop]))
        # raw_link closes the socket here without reading the answer.

    async def closed():
        return (await api.transaction(tx_id))["stopped_at"] is not None

    await api.wait_for("the stop to be recorded", closed)
    done = await api.transaction(tx_id)
    assert (done["energy_wh"], done["stop_reason"]) == (4321, "HardReset")


async def test_pipelined_requests_are_all_answered_in_order(server, api, cp_id):
    """A charger replaying its queue may not wait for each answer; the server
    answers every CALL, in order (OCPP-J puts the one-at-a-time duty on the sender)."""
    base = utcnow() - timedelta(minutes=10)
    async with raw_link(server, cp_id) as link:
        await link.boot()
        ids = [f"pipe-{i}" for i in range(10)]
        for i, unique_id in enumerate(ids):
            payload = {
                "connectorId": 1,
                "meterValue": [energy_sample(base + timedelta(seconds=i), 100 * i, context="Sample.Clock")],
            }
            await link.send_text(json.dumps([2, unique_id, "MeterValues", payload]))
        replies = [await link.recv_frame() for _ in ids]
        assert [r[1] for r in replies] == ids, replies
        assert all(r[0] == 3 for r in replies), replies


async def test_stop_naming_another_chargers_transaction_does_not_close_it(server, api, tag):
    """Transaction ids are global; a charger (buggy, or replaying after a
    database restore) that names another charger's id must not stop that
    charger's session. Its stop is still recorded, under its own charger."""
    a, b = new_id("A"), new_id("B")
    await api.add_charger(a)
    await api.add_charger(b)
    async with charge_point(server, a) as cp_a, charge_point(server, b) as cp_b:
        await cp_a.boot(connectors=1)
        await cp_b.boot(connectors=1)
        tx_a = await cp_a.start_tx(tag, meter_start=100)
        await cp_b.stop_tx(tx_a, 999, reason="Local")
    assert (await api.transaction(tx_a))["stopped_at"] is None, "charger B closed charger A's session"
    assert [t["id"] for t in await api.transactions(charger_id=a, active=True)] == [tx_a]
    recorded = await api.transactions(charger_id=b)
    assert len(recorded) == 1 and recorded[0]["meter_stop_wh"] == 999, recorded


async def test_oversized_message_is_refused_with_close_1009(server, api, cp_id):
    """Past the server's size limit the charger must learn why (RFC 6455 1009),
    not see a bare TCP reset. Only the frame header (announcing 64 MiB) is sent:
    the limit applies to the announced length, and with nothing left unread the
    server's close frame cannot be lost to a TCP reset."""
    async with silent_peer(server, cp_id) as (reader, writer):
        length = 64 * 1024 * 1024
        # FIN + text opcode; MASK bit + 127 = 64-bit length; then a masking key.
        writer.write(bytes([0x81, 0x80 | 127]) + length.to_bytes(8, "big") + b"\x00\x00\x00\x00")
        await writer.drain()
        while True:
            head = await asyncio.wait_for(reader.readexactly(2), EVENT_TIMEOUT)
            size = head[1] & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await reader.readexactly(8), "big")
            body = await reader.readexactly(size)
            if head[0] & 0x0F == 0x8:  # close frame (server frames are unmasked)
                break
        code = int.from_bytes(body[:2], "big")
        assert code == 1009, f"close code {code}, reason {body[2:]!r}"


async def test_sub_second_samples_are_distinct(server, api, cp_id, tag):
    """Fast meters sample more than once a second; samples 250 ms apart are
    different readings, not replays."""
    t0 = utcnow() - timedelta(minutes=1)
    stamps = [t0 + timedelta(milliseconds=250 * i) for i in range(4)]
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=1)
        tx_id = await cp.start_tx(tag, meter_start=0, timestamp=t0 - timedelta(seconds=1))
        await cp.meter(1, tx_id, [(ts, 10 * (i + 1)) for i, ts in enumerate(stamps)])
    got = series(await api.meter_values(tx_id))
    assert got == [(ts, 10.0 * (i + 1)) for i, ts in enumerate(stamps)], got
