"""Sharing a private charger with a neighbour (issue 5, policy clause 七), with an independent
Python `ocpp` charge point against the real binary (SQLite, and PostgreSQL when
ORDERLY_TEST_POSTGRES_URL is set).

The owner publishes an agreement and a window through the API, a neighbour books part of it, and
the charge point asks the server: the neighbour's tag is refused before the booking and accepted
during it, a stranger's never; the session is settled at StopTransaction (figures worked out by
hand below); a second neighbour who never comes is marked a no-show by the sweep; the owner's
monthly CSV statement lists both with their totals. The server runs its protocol clock 60×
(`clock_speed`), from a fixed start so the statement month is known; waits poll the charge
point's Heartbeat (protocol time) or the API with a deadline.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import datetime, timedelta

from ocpp.v16 import call

from harness import EVENT_TIMEOUT, Api, charge_point, iso, parse_ts

CONFIG = """
clock_speed = 60.0
clock_start = "2026-11-26T08:00:00Z"

[sharing]
sweep_interval_secs = 30
"""


def password(user: str) -> str:
    return f"{user}-secret-pw"


async def login(srv, admin: Api, user: str, role: str, tags: list[str]) -> Api:
    Api.ok(
        await admin.post(
            "/users",
            {"id": user, "name": user.title(), "password": password(user), "role": role,
             "scopes": [], "id_tags": tags},
        ),
        201,
    )
    for tag in tags:
        await admin.add_tag(tag, "Accepted")
    session = Api.ok(await admin.post("/login", {"user": user, "password": password(user)}))
    return Api(srv, token=session["token"])


async def protocol_now(cp) -> datetime:
    conf = await cp.send(call.Heartbeat())
    return parse_ts(conf.current_time)


async def wait_until(cp, at: datetime) -> None:
    deadline = time.monotonic() + EVENT_TIMEOUT
    while await protocol_now(cp) < at:
        assert time.monotonic() < deadline, f"protocol time did not reach {at}"
        await asyncio.sleep(0.05)


async def test_a_booking_lets_a_neighbour_charge_and_settles(server_factory):
    srv = server_factory(before_start=lambda s: (s.data_dir / "orderly.toml").write_text(CONFIG))
    admin = Api(srv)
    clients = [admin]
    try:
        Api.ok(await admin.put("/districts/D1", {"name": "D1", "city": "Beijing"}), 201)
        Api.ok(await admin.put("/communities/A", {"name": "A", "rating_kva": 400.0,
                                                  "power_factor": 0.9, "base_load_kw": 50.0}), 200, 201)
        Api.ok(await admin.put("/registry/communities/A", {"address": "A Road", "district_id": "D1"}))
        olga = await login(srv, admin, "olga", "charger_owner", ["OLGA-1"])
        nina = await login(srv, admin, "nina", "resident", ["NINA-1"])
        sam = await login(srv, admin, "sam", "resident", ["SAM-1"])
        clients += [olga, nina, sam]
        await admin.add_charger("SHARED")
        Api.ok(await admin.put("/registry/chargers/SHARED", {
            "community_id": "A", "kind": "self_use", "owner": "olga", "operator": "GridCo",
            "connectors": [{"connector_id": 1, "standard": "GB/T"}]}))
        for to in ("installed", "active"):
            Api.ok(await admin.post("/registry/chargers/SHARED/lifecycle", {"to": to}))
        # 1.50 CNY/kWh, no hourly price, owner 80 %; no-show after 2 min, fee 4.00.
        Api.ok(await olga.put("/registry/chargers/SHARED/sharing", {
            "price_per_kwh_cny": 1.5, "owner_share_percent": 80.0, "operator": "GridCo",
            "owner_priority": False, "no_show_grace_min": 2, "no_show_fee_cny": 4.0,
            "cancel_notice_min": 30, "late_cancel_fee_cny": 2.0}))

        async with charge_point(srv, "SHARED") as cp:
            await cp.boot(connectors=1)
            t0 = await protocol_now(cp)
            Api.ok(await olga.post("/registry/chargers/SHARED/sharing/windows",
                                   {"start": iso(t0 + timedelta(minutes=1)),
                                    "end": iso(t0 + timedelta(minutes=240))}), 201)
            start, end = t0 + timedelta(minutes=1), t0 + timedelta(minutes=5)
            booked = Api.ok(await nina.post("/sharing/bookings", {
                "charger_id": "SHARED", "start": iso(start), "end": iso(end), "id_tag": "NINA-1"}), 201)
            no_show_start = end
            skipped = Api.ok(await sam.post("/sharing/bookings", {
                "charger_id": "SHARED", "start": iso(no_show_start),
                "end": iso(no_show_start + timedelta(minutes=30)), "id_tag": "SAM-1"}), 201)
            # Overlapping nina's booking: refused, naming it.
            clash = await sam.post("/sharing/bookings", {
                "charger_id": "SHARED", "start": iso(start), "end": iso(end), "id_tag": "SAM-1"})
            assert clash.status_code == 409 and f"id {booked['id']}" in clash.json()["error"], clash.text

            # Before the booking: refused; the owner is not.
            assert (await cp.authorize("NINA-1"))["status"] == "Invalid"
            assert (await cp.authorize("OLGA-1"))["status"] == "Accepted"
            await wait_until(cp, start)
            assert (await cp.authorize("NINA-1"))["status"] == "Accepted"
            assert (await cp.authorize("SAM-1"))["status"] == "Invalid"
            assert (await cp.authorize("OLGA-1"))["status"] == "Invalid", "no owner priority"

            began = datetime.fromisoformat("2026-11-26T08:10:00+00:00")
            tx = await cp.start_tx("NINA-1", connector=1, meter_start=500, timestamp=began)
            await cp.stop_tx(tx, meter_stop=500 + 12_345, timestamp=began + timedelta(minutes=45))
            # 12.345 kWh × 1.50 = 18.5175 → 18.52 CNY; owner 80 % = 14.816 → 14.82; operator 3.70.
            done = Api.ok(await nina.get(f"/sharing/bookings/{booked['id']}"))
            assert done["state"] == "completed"
            s = done["settlement"]
            assert (s["energy_wh"], s["energy_fee_fen"], s["time_fee_fen"]) == (12_345, 1852, 0), s
            assert (s["total_fen"], s["owner_share_fen"], s["operator_share_fen"]) == (1852, 1482, 370), s

            # Sam never comes: after the 2 min grace the sweep marks the booking a no-show.
            deadline = time.monotonic() + EVENT_TIMEOUT
            while (b := Api.ok(await sam.get(f"/sharing/bookings/{skipped['id']}")))["state"] == "pending":
                assert time.monotonic() < deadline, "the no-show was not swept"
                await asyncio.sleep(0.1)
            assert b["state"] == "no_show", b
            assert await protocol_now(cp) >= no_show_start + timedelta(minutes=2)
            assert (b["settlement"]["total_fen"], b["settlement"]["owner_share_fen"]) == (400, 320), b
            assert (await cp.authorize("SAM-1"))["status"] == "Invalid"
            told = Api.ok(await olga.get("/notifications"))
            assert any(n["kind"] == "sharing.no_show" and n["data"]["booking_id"] == skipped["id"]
                       for n in told), told

        # The owner's statement for November (China Standard Time).
        resp = await olga.get("/sharing/statements", params={"month": "2026-11", "owner": "olga"})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv"), resp.text
        rows = list(csv.DictReader(io.StringIO(resp.text)))
        # In time order: the no-show (08:0x) before the session's stop (08:55).
        assert [r["kind"] for r in rows] == ["no_show", "session", "2"], rows
        no_show, session, total = rows
        assert (session["date"], session["charger"], session["booker"], session["kwh"]) == \
            ("2026-11-26", "SHARED", "nina", "12.345")
        assert (session["total_cny"], session["owner_share_cny"], session["operator_share_cny"]) == \
            ("18.52", "14.82", "3.70")
        assert (no_show["fee_cny"], no_show["owner_share_cny"], no_show["operator_share_cny"]) == \
            ("4.00", "3.20", "0.80")
        assert total["date"] == "total"
        assert (total["total_cny"], total["owner_share_cny"], total["operator_share_cny"]) == \
            ("22.52", "18.02", "4.50")
        # A neighbour may not read the owner's statement.
        assert (await nina.get("/sharing/statements",
                               params={"month": "2026-11", "owner": "olga"})).status_code == 403
    finally:
        for c in clients:
            await c.aclose()
