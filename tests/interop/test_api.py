"""The operator HTTP API's own resources: chargers, id tags, errors, metrics."""

from __future__ import annotations

import httpx

from harness import Api, charge_point, new_id, new_tag


async def test_charger_crud(server, api):
    cp_id = new_id()
    created = await api.add_charger(cp_id, password="crud-password-123", description="garage 3")
    assert created["id"] == cp_id
    assert "password" not in created and "password_hash" not in created, created
    assert (await api.post("/chargers", {"id": cp_id})).status_code == 409
    one = await api.charger(cp_id)
    assert (one["id"], one["status"], one["connected"]) == (cp_id, "registered", False)
    assert cp_id in [c["id"] for c in Api.ok(await api.get("/chargers"))]
    assert (await api.get(f"/chargers/{new_id('NOBODY')}")).status_code == 404
    Api.ok(await api.delete(f"/chargers/{cp_id}"), 200, 204)
    assert (await api.get(f"/chargers/{cp_id}")).status_code == 404


async def test_bad_charger_bodies_name_the_field(server, api):
    missing = await api.post("/chargers", {"password": "x-password-123"})
    assert missing.status_code in (400, 422), missing.text
    assert "id" in missing.json()["error"], missing.text
    bad = await api.post("/chargers", {"id": "no spaces allowed"})
    assert bad.status_code in (400, 422), bad.text
    assert "id" in bad.json()["error"], bad.text


async def test_id_tag_crud(server, api):
    tag = new_tag()
    await api.add_tag(tag, "Blocked")
    assert (await api.post("/id-tags", {"id_tag": tag, "status": "Accepted"})).status_code == 409
    listed = {t["id_tag"]: t for t in Api.ok(await api.get("/id-tags"))}
    assert listed[tag]["status"] == "Blocked"
    bad = await api.post("/id-tags", {"id_tag": new_tag(), "status": "Sometimes"})
    assert bad.status_code in (400, 422) and "status" in bad.json()["error"], bad.text
    too_long = await api.post("/id-tags", {"id_tag": "T" * 21, "status": "Accepted"})
    assert too_long.status_code in (400, 422) and "id_tag" in too_long.json()["error"], too_long.text
    Api.ok(await api.delete(f"/id-tags/{tag}"), 200, 204)
    assert tag not in [t["id_tag"] for t in Api.ok(await api.get("/id-tags"))]


async def test_connectors_view_after_boot(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=2)
        await cp.status(2, "Unavailable")
        rows = {c["connector_id"]: c for c in await api.connectors(cp_id)}
        assert rows[1]["status"] == "Available" and rows[2]["status"] == "Unavailable"
        assert all(r["updated_at"] for r in rows.values())
        listed = {c["id"]: c for c in Api.ok(await api.get("/chargers"))}
        assert {c["connector_id"] for c in listed[cp_id]["connectors"]} >= {1, 2}


async def test_connected_chargers_gauge(server, api, cp_id):
    async with httpx.AsyncClient(base_url=server.http_base) as plain:
        async with charge_point(server, cp_id) as cp:
            await cp.boot(connectors=0)
            text = (await plain.get("/metrics")).text
            gauge = [line for line in text.splitlines() if line.startswith("orderly_connected_chargers")]
            assert gauge and float(gauge[0].split()[-1]) == 1.0, gauge
