"""Malformed frames, sent raw over the WebSocket: each class gets its CALLERROR
code and the connection survives (a normal Heartbeat works right after)."""

from __future__ import annotations

import json

import httpx
import pytest

from harness import iso, raw_link, utcnow

FRAMING = {"FormationViolation", "ProtocolError"}

BOOT_OK = {"chargePointVendor": "OrderlyTest", "chargePointModel": "Raw"}


def status_notification(**override) -> dict:
    body = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    body.update(override)
    return body


def start_transaction(**override) -> dict:
    body = {"connectorId": 1, "idTag": "RAWTAG", "meterStart": 0, "timestamp": iso(utcnow())}
    body.update(override)
    return body


# (case id, raw text, unique id the error must echo or None, accepted codes)
CASES = [
    ("not-json", "this is { not json", None, FRAMING),
    ("truncated-json", '[2, "m-trunc", "Heartbeat", {', None, FRAMING),
    ("not-an-array", json.dumps({"messageTypeId": 2, "action": "Heartbeat"}), None, FRAMING),
    ("array-too-short", json.dumps([2, "m-short"]), None, FRAMING),
    ("unknown-message-type", json.dumps([7, "m-type", "Heartbeat", {}]), "m-type", FRAMING),
    ("unique-id-not-a-string", json.dumps([2, 4711, "Heartbeat", {}]), None, FRAMING),
    (
        "payload-not-an-object",
        json.dumps([2, "m-payload", "Heartbeat", "nope"]),
        "m-payload",
        FRAMING | {"TypeConstraintViolation"},
    ),
    ("unknown-action", json.dumps([2, "m-action", "FlyToTheMoon", {}]), "m-action", {"NotImplemented"}),
    (
        "missing-required-field",
        json.dumps([2, "m-req", "BootNotification", {"chargePointModel": "Raw"}]),
        "m-req",
        {"OccurenceConstraintViolation"},
    ),
    (
        "missing-required-nested-field",
        json.dumps(
            [2, "m-req2", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": iso(utcnow())}]}]
        ),
        "m-req2",
        {"OccurenceConstraintViolation"},
    ),
    (
        "wrong-type-string-for-integer",
        json.dumps([2, "m-type1", "StartTransaction", start_transaction(meterStart="a lot")]),
        "m-type1",
        {"TypeConstraintViolation"},
    ),
    (
        "wrong-type-integer-for-string",
        json.dumps([2, "m-type2", "BootNotification", {**BOOT_OK, "chargePointVendor": 123}]),
        "m-type2",
        {"TypeConstraintViolation"},
    ),
    (
        "bad-enum-value",
        json.dumps([2, "m-enum", "StatusNotification", status_notification(status="Flying")]),
        "m-enum",
        {"PropertyConstraintViolation"},
    ),
    (
        "string-too-long",
        json.dumps([2, "m-long", "BootNotification", {**BOOT_OK, "chargePointVendor": "V" * 21}]),
        "m-long",
        {"PropertyConstraintViolation"},
    ),
    (
        "id-tag-too-long",
        json.dumps([2, "m-long2", "Authorize", {"idTag": "T" * 21}]),
        "m-long2",
        {"PropertyConstraintViolation"},
    ),
]


def check_error_frame(frame: list, echo: str | None, codes: set[str]) -> None:
    assert frame[0] == 4, f"expected a CALLERROR, got {frame}"
    assert len(frame) == 5, f"a CALLERROR has 5 elements: {frame}"
    _, unique_id, code, description, details = frame
    assert isinstance(unique_id, str) and isinstance(description, str) and isinstance(details, dict), frame
    if echo is not None:
        assert unique_id == echo, f"CALLERROR must echo the message id {echo!r}: {frame}"
    assert code in codes, f"error code {code!r} not in {sorted(codes)}: {frame}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_malformed_frame_gets_callerror_and_connection_survives(server, api, cp_id, case):
    _, text, echo, codes = case
    async with raw_link(server, cp_id) as link:
        await link.boot()
        await link.send_text(text)
        frame = await (link.reply_to(echo) if echo is not None else link.next_error())
        check_error_frame(frame, echo, codes)
        await link.heartbeat_works()


async def test_bad_timestamp_is_refused(server, api, cp_id):
    async with raw_link(server, cp_id) as link:
        await link.boot()
        frame = await link.call("StartTransaction", start_transaction(timestamp="yesterday-ish"))
        check_error_frame(
            frame, frame[1], {"PropertyConstraintViolation", "TypeConstraintViolation", "FormationViolation"}
        )
        await link.heartbeat_works()
    assert await api.transactions(charger_id=cp_id) == []


async def test_charge_point_only_action_sent_by_charger(server, api, cp_id):
    """Reset is a real 1.6 action, but only the CSMS sends it."""
    async with raw_link(server, cp_id) as link:
        await link.boot()
        frame = await link.call("Reset", {"type": "Hard"})
        check_error_frame(frame, frame[1], {"NotSupported", "NotImplemented"})
        await link.heartbeat_works()


async def test_stray_callresult_and_callerror_are_ignored(server, api, cp_id):
    async with raw_link(server, cp_id) as link:
        await link.boot()
        await link.send_text(json.dumps([3, "never-asked", {"status": "Accepted"}]))
        await link.send_text(json.dumps([4, "never-asked-2", "GenericError", "", {}]))
        await link.heartbeat_works()


async def test_all_bad_frames_on_one_connection_then_metrics(server, api, cp_id):
    async with raw_link(server, cp_id) as link:
        await link.boot()
        seen: set[str] = set()
        for _, text, echo, codes in CASES:
            await link.send_text(text)
            frame = await (link.reply_to(echo) if echo is not None else link.next_error())
            check_error_frame(frame, echo, codes)
            seen.add(frame[2])
            await link.heartbeat_works()
        assert not link.other_frames, f"unexpected frames from the server: {link.other_frames}"
    async with httpx.AsyncClient() as plain:
        text = (await plain.get(f"{server.http_base}/metrics")).text
    for code in seen:
        assert f'code="{code}"' in text, f"orderly_ocpp_errors_total has no code={code}"
    assert "orderly_ocpp_errors_total" in text
