"""Operator-triggered operations (POST /chargers/{id}/operations/{Action}) and
the OCA conformance cases they drive: Core, LocalAuthList, Firmware,
Reservation, RemoteTrigger and SmartCharging.

Each operation is checked at both ends: the charge point receives exactly the
payload the operator posted (lessons L1/L2: no pre-validation, no rewriting;
L11: values, not member order), and the API returns exactly the charge point's
answer."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.exceptions import NotSupportedError

from harness import (
    Api,
    SimChargePoint,
    call,
    charge_point,
    iso,
    new_id,
    new_tag,
    raw_link,
    timedelta,
    utcnow,
)


async def op(api: Api, cp: SimChargePoint, action: str, payload: dict, answer: dict) -> dict:
    cp.answer(action, answer)
    response = await api.operation(cp.id, action, payload)
    received = await cp.expect(action)
    assert received == payload, f"{action}: charger received {received}, operator sent {payload}"
    assert response == answer, f"{action}: API returned {response}, charger answered {answer}"
    return response


async def active_ids(api: Api, cp_id: str) -> list[int]:
    return [t["id"] for t in await api.transactions(charger_id=cp_id, active=True)]


# ---------------------------------------------------------------- remote start / stop


async def test_remote_start_and_stop(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "RemoteStartTransaction", {"connectorId": 1, "idTag": tag}, {"status": "Accepted"})
        tx_id = await cp.enter_charging(tag, meter_start=200)
        assert await active_ids(api, cp_id) == [tx_id]
        await op(api, cp, "RemoteStopTransaction", {"transactionId": tx_id}, {"status": "Accepted"})
        await cp.stop_tx(tx_id, 1200, reason="Remote")
        await cp.status(1, "Finishing")
        await cp.status(1, "Available")
    done = await api.transaction(tx_id)
    assert (done["stop_reason"], done["energy_wh"]) == ("Remote", 1000)


async def test_tc_010_remote_start_cable_plugged_in_first(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await cp.status(1, "Preparing")
        await op(api, cp, "RemoteStartTransaction", {"connectorId": 1, "idTag": tag}, {"status": "Accepted"})
        assert (await cp.authorize(tag))["status"] == "Accepted"  # L14
        tx_id = await cp.start_tx(tag)
        await cp.status(1, "Charging")
    assert (await api.transaction(tx_id))["id_tag"] == tag


async def test_tc_011_1_remote_start_remote_start_first(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "RemoteStartTransaction", {"connectorId": 1, "idTag": tag}, {"status": "Accepted"})
        assert (await cp.authorize(tag))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        tx_id = await cp.start_tx(tag)
        await cp.status(1, "Charging")
    assert await active_ids(api, cp_id) == [tx_id]


async def test_tc_011_2_remote_start_time_out(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "RemoteStartTransaction", {"connectorId": 1, "idTag": tag}, {"status": "Accepted"})
        assert (await cp.authorize(tag))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        await cp.status(1, "Available", timestamp=utcnow() + timedelta(seconds=5))
    assert await api.transactions(charger_id=cp_id) == []


async def test_tc_012_remote_stop_charging_session(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag)
        # The transactionId the CSMS issued is the one the operator uses.
        await op(api, cp, "RemoteStopTransaction", {"transactionId": tx_id}, {"status": "Accepted"})
        await cp.stop_tx(tx_id, 500, reason="Remote")
        await cp.status(1, "Finishing")
        await cp.status(1, "Available")
    assert (await api.transaction(tx_id))["stop_reason"] == "Remote"


async def test_tc_026_remote_start_rejected(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "RemoteStartTransaction", {"connectorId": 1, "idTag": tag}, {"status": "Rejected"})
        await cp.send(call.Heartbeat())
    assert await api.transactions(charger_id=cp_id) == []


async def test_tc_028_remote_stop_transaction_rejected(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag)
        await op(api, cp, "RemoteStopTransaction", {"transactionId": tx_id}, {"status": "Rejected"})
        # Rejected: the transaction stays open (L1).
        assert await active_ids(api, cp_id) == [tx_id]
        # L1: an id the CSMS never issued still goes on the wire, as given.
        await op(api, cp, "RemoteStopTransaction", {"transactionId": 987_654}, {"status": "Rejected"})
        assert await active_ids(api, cp_id) == [tx_id]
        # The charge point then stops locally (the TCK's scenario).
        await cp.stop_tx(tx_id, 300, reason="Local")
    assert await active_ids(api, cp_id) == []
    assert (await api.transaction(tx_id))["stop_reason"] == "Local"


# ---------------------------------------------------------------- reset / unlock / config


async def test_tc_013_hard_reset(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "Reset", {"type": "Hard"}, {"status": "Accepted"})
    # The charger reboots: a new socket, a new boot.
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=2)
        assert (await api.charger(cp_id))["connected"] is True


async def test_tc_014_soft_reset(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "Reset", {"type": "Soft"}, {"status": "Accepted"})
        await cp.boot(connectors=2)  # rebooted on the same socket


async def test_tc_017_1_unlock_connector_no_session_not_fixed_cable(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"})


async def test_tc_017_2_unlock_connector_no_session_fixed_cable(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "UnlockConnector", {"connectorId": 1}, {"status": "NotSupported"})


async def test_tc_018_1_unlock_connector_with_charging_session(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag)
        await op(api, cp, "UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"})
        await cp.status(1, "Finishing")
        await cp.stop_tx(tx_id, 800, reason="UnlockCommand")
        await cp.status(1, "Available")
    assert (await api.transaction(tx_id))["stop_reason"] == "UnlockCommand"


async def test_tc_030_unlock_connector_unlock_failure(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "UnlockConnector", {"connectorId": 1}, {"status": "UnlockFailed"})


async def test_tc_031_unlock_connector_unknown_connector(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        # Connector 99 does not exist: sent anyway, the charger says NotSupported.
        await op(api, cp, "UnlockConnector", {"connectorId": 99}, {"status": "NotSupported"})


FULL_CONFIGURATION = [
    {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
    {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
    {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
    {
        "key": "SupportedFeatureProfiles",
        "readonly": True,
        "value": "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
    },
    {"key": "AuthorizeRemoteTxRequests", "readonly": False, "value": "true"},
]


async def test_tc_019_1_retrieve_all_configuration_keys(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        answer = {"configurationKey": FULL_CONFIGURATION, "unknownKey": []}
        cp.answer("GetConfiguration", answer)
        response = await api.operation(cp_id, "GetConfiguration", {})
        received = await cp.expect("GetConfiguration")
        # L11: "all keys" may be {} or {"key": []}.
        assert received in ({}, {"key": []}), received
        assert response == answer


async def test_tc_019_2_retrieve_specific_configuration_key(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        response = await op(
            api,
            cp,
            "GetConfiguration",
            {"key": ["SupportedFeatureProfiles"]},
            {"configurationKey": [FULL_CONFIGURATION[3]]},
        )
        assert len(response["configurationKey"]) == 1


async def test_tc_021_change_set_configuration(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "ChangeConfiguration",
            {"key": "MeterValueSampleInterval", "value": "60"},
            {"status": "Accepted"},
        )
        # L3: no follow-up GetConfiguration. A round trip gives a CALL the server
        # sent right after the answer the time to arrive; charge_point() then
        # fails on any unsolicited CALL.
        await cp.send(call.Heartbeat())


async def test_tc_040_1_configuration_keys_not_supported(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "ChangeConfiguration",
            {"key": "UnknownConfigKey_xyz", "value": "123"},
            {"status": "NotSupported"},
        )


async def test_tc_040_2_configuration_keys_invalid_value(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "ChangeConfiguration",
            {"key": "MeterValueSampleInterval", "value": "INVALID_VALUE"},
            {"status": "Rejected"},
        )


async def test_tc_061_clear_authorization_data_in_cache(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "ClearCache", {}, {"status": "Accepted"})


async def test_change_availability_and_data_transfer_to_charger(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api, cp, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, {"status": "Scheduled"}
        )
        await op(
            api,
            cp,
            "DataTransfer",
            {"vendorId": "com.orderly", "messageId": "Hello", "data": "42"},
            {"status": "Accepted", "data": "43"},
        )


# ---------------------------------------------------------------- local auth list


LOCAL_LIST_V1 = {
    "listVersion": 1,
    "updateType": "Full",
    "localAuthorizationList": [{"idTag": "LOCALTAG1", "idTagInfo": {"status": "Accepted"}}],
}


async def test_tc_042_1_get_local_list_version_not_supported(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "GetLocalListVersion", {}, {"listVersion": -1})


async def test_tc_042_2_get_local_list_version_empty(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "GetLocalListVersion", {}, {"listVersion": 0})


async def send_full_list(server, api, cp_id, status: str) -> None:
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "SendLocalList", LOCAL_LIST_V1, {"status": status})


async def test_tc_043_1_send_local_authorization_list_not_supported(server, api, cp_id):
    await send_full_list(server, api, cp_id, "NotSupported")


async def test_tc_043_3_send_local_authorization_list_failed(server, api, cp_id):
    await send_full_list(server, api, cp_id, "Failed")


async def test_tc_043_4_send_local_authorization_list_full(server, api, cp_id):
    await send_full_list(server, api, cp_id, "Accepted")


async def test_tc_043_5_send_local_authorization_list_differential(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "SendLocalList", LOCAL_LIST_V1, {"status": "Accepted"})
        await op(api, cp, "GetLocalListVersion", {}, {"listVersion": 1})
        delta = {
            "listVersion": 2,
            "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "LOCALTAG2", "idTagInfo": {"status": "Accepted"}}],
        }
        await op(api, cp, "SendLocalList", delta, {"status": "Accepted"})


# ---------------------------------------------------------------- firmware & diagnostics


async def test_tc_044_1_firmware_update_download_and_install(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "UpdateFirmware",
            {
                "location": "ftp://firmware.example/fw-2.0.bin",
                "retrieveDate": iso(utcnow()),
                "retries": 1,
                "retryInterval": 30,
            },
            {},
        )
        await cp.send(call.FirmwareStatusNotification(status="Downloading"))
        await cp.send(call.FirmwareStatusNotification(status="Downloaded"))
        for connector in (0, 1, 2):
            await cp.status(connector, "Unavailable")
        await cp.send(call.FirmwareStatusNotification(status="Installing"))
    async with charge_point(server, cp_id) as cp:  # rebooted into the new firmware
        await cp.boot(connectors=2)
        await cp.send(call.FirmwareStatusNotification(status="Installed"))
    info = await api.charger(cp_id)
    assert info["firmware_status"] == "Installed", info


async def test_tc_044_2_firmware_update_download_failed(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "UpdateFirmware",
            {"location": "ftp://firmware.example/missing.bin", "retrieveDate": iso(utcnow())},
            {},
        )
        await cp.send(call.FirmwareStatusNotification(status="Downloading"))
        await cp.send(call.FirmwareStatusNotification(status="DownloadFailed"))


async def test_tc_044_3_firmware_update_installation_failed(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "UpdateFirmware",
            {"location": "ftp://firmware.example/bad.bin", "retrieveDate": iso(utcnow())},
            {},
        )
        for status in ("Downloading", "Downloaded", "Installing"):
            await cp.send(call.FirmwareStatusNotification(status=status))
        await cp.boot(connectors=2)
        await cp.send(call.FirmwareStatusNotification(status="InstallationFailed"))


async def get_diagnostics(server, api, cp_id, final: str) -> None:
    now = utcnow()
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "GetDiagnostics",
            {
                "location": "ftp://diag.example/upload",
                "retries": 1,
                "retryInterval": 30,
                "startTime": iso(now - timedelta(days=1)),
                "stopTime": iso(now),
            },
            {"fileName": "diag.log"},
        )
        await cp.send(call.DiagnosticsStatusNotification(status="Uploading"))
        await cp.send(call.DiagnosticsStatusNotification(status=final))
    assert (await api.charger(cp_id))["diagnostics_status"] == final


async def test_tc_045_1_get_diagnostics(server, api, cp_id):
    await get_diagnostics(server, api, cp_id, "Uploaded")


async def test_tc_045_2_get_diagnostics_upload_failed(server, api, cp_id):
    await get_diagnostics(server, api, cp_id, "UploadFailed")


# ---------------------------------------------------------------- reservation


def reserve(connector: int, id_tag: str, reservation_id: int, minutes: int = 60, **extra) -> dict:
    return {
        "connectorId": connector,
        "expiryDate": iso(utcnow() + timedelta(minutes=minutes)),
        "idTag": id_tag,
        "reservationId": reservation_id,
        **extra,
    }


async def test_tc_046_reservation_of_a_connector_transaction(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "ReserveNow", reserve(1, tag, 101), {"status": "Accepted"})
        await cp.status(1, "Reserved")
        assert (await cp.authorize(tag))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        tx_id = await cp.start_tx(tag, reservation_id=101)
        await cp.status(1, "Charging")
    done = await api.transaction(tx_id)
    assert done["id_tag"] == tag
    assert done["reservation_id"] == 101  # L13: the transaction is linked to the reservation


async def test_tc_047_reservation_of_a_connector_expire(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        payload = reserve(1, tag, 102, minutes=1)
        await op(api, cp, "ReserveNow", payload, {"status": "Accepted"})
        await cp.status(1, "Reserved")
        # The reservation ran out on the charger's clock; it reports Available,
        # stamped at the expiry the operator chose.
        await cp.status(1, "Available", timestamp=utcnow() + timedelta(minutes=1))
    assert await api.transactions(charger_id=cp_id) == []


async def reservation_refused(server, api, cp_id, tag, status: str) -> None:
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "ReserveNow", reserve(1, tag, 104), {"status": status})
    assert await api.transactions(charger_id=cp_id) == []


async def test_tc_048_1_reservation_faulted(server, api, cp_id, tag):
    await reservation_refused(server, api, cp_id, tag, "Faulted")


async def test_tc_048_4_reservation_rejected(server, api, cp_id, tag):
    await reservation_refused(server, api, cp_id, tag, "Rejected")


async def test_tc_048_2_reservation_occupied(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await cp.status(1, "Preparing")
        await op(api, cp, "ReserveNow", reserve(1, tag, 105), {"status": "Occupied"})


async def test_tc_048_3_reservation_unavailable(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api, cp, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, {"status": "Accepted"}
        )
        await cp.status(1, "Unavailable")
        rows = {c["connector_id"]: c for c in await api.connectors(cp_id)}
        assert rows[1]["status"] == "Unavailable"
        await op(api, cp, "ReserveNow", reserve(1, tag, 106), {"status": "Unavailable"})


async def test_tc_049_reservation_of_a_charge_point_transaction(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "ReserveNow", reserve(0, tag, 107), {"status": "Accepted"})
        await cp.status(1, "Reserved")


async def test_tc_051_cancel_reservation(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "ReserveNow", reserve(1, tag, 108), {"status": "Accepted"})
        await cp.status(1, "Reserved")
        await op(api, cp, "CancelReservation", {"reservationId": 108}, {"status": "Accepted"})
        await cp.status(1, "Available")


async def test_tc_052_cancel_reservation_rejected(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "ReserveNow", reserve(1, tag, 109), {"status": "Accepted"})
        await cp.status(1, "Reserved")
        await op(api, cp, "CancelReservation", {"reservationId": 109}, {"status": "Rejected"})
        # L2: an id the CSMS never issued is sent as given, too.
        await op(api, cp, "CancelReservation", {"reservationId": 99_999}, {"status": "Rejected"})


async def test_tc_053_use_a_reserved_connector_with_parent_id_tag(server, api, cp_id):
    parent, child = new_tag("PAR"), new_tag("CHD")
    await api.add_tag(parent)
    await api.add_tag(child, parent=parent)
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "ReserveNow", reserve(1, child, 110, parentIdTag=parent), {"status": "Accepted"})
        await cp.status(1, "Reserved")
        tx_id = await cp.enter_charging(parent)
    assert (await api.transaction(tx_id))["id_tag"] == parent


# ---------------------------------------------------------------- remote trigger


async def test_tc_054_trigger_message(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        rounds = [
            (
                {"requestedMessage": "MeterValues", "connectorId": 1},
                lambda: cp.meter(1, None, [(utcnow(), 1000)]),
            ),
            ({"requestedMessage": "Heartbeat"}, lambda: cp.send(call.Heartbeat())),
            ({"requestedMessage": "StatusNotification", "connectorId": 1}, lambda: cp.status(1, "Available")),
            (
                {"requestedMessage": "DiagnosticsStatusNotification"},
                lambda: cp.send(call.DiagnosticsStatusNotification(status="Idle")),
            ),
            (
                {"requestedMessage": "FirmwareStatusNotification"},
                lambda: cp.send(call.FirmwareStatusNotification(status="Idle")),
            ),
        ]
        for request, triggered in rounds:
            await op(api, cp, "TriggerMessage", request, {"status": "Accepted"})
            await triggered()


async def test_tc_055_trigger_message_rejected(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "TriggerMessage",
            {"requestedMessage": "MeterValues", "connectorId": 1},
            {"status": "Rejected"},
        )


# ---------------------------------------------------------------- smart charging


def profile(profile_id: int, purpose: str, limit: float, **extra) -> dict:
    now = utcnow()
    body = {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "duration": 3600,
            "startSchedule": iso(now),
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit, "numberPhases": 3}],
        },
    }
    if purpose == "TxDefaultProfile":
        body["validFrom"] = iso(now)
        body["validTo"] = iso(now + timedelta(days=1))
    body.update(extra)
    return body


async def test_set_charging_profile_and_get_composite_schedule(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "SetChargingProfile",
            {"connectorId": 1, "csChargingProfiles": profile(1, "TxDefaultProfile", 11000.0)},
            {"status": "Accepted"},
        )
        start = iso(utcnow())
        composite = {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": start,
            "chargingSchedule": {
                "duration": 600,
                "startSchedule": start,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 11000.0, "numberPhases": 3},
                    {"startPeriod": 300, "limit": 7400.0, "numberPhases": 3},
                ],
            },
        }
        response = await op(
            api,
            cp,
            "GetCompositeSchedule",
            {"connectorId": 1, "duration": 600, "chargingRateUnit": "W"},
            composite,
        )
        periods = response["chargingSchedule"]["chargingSchedulePeriod"]
        assert [p["limit"] for p in periods] == [11000.0, 7400.0]


async def test_tc_056_central_smart_charging_tx_default_profile(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(
            api,
            cp,
            "SetChargingProfile",
            {"connectorId": 1, "csChargingProfiles": profile(56, "TxDefaultProfile", 6.0)},
            {"status": "Accepted"},
        )


async def test_tc_057_central_smart_charging_tx_profile(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag)
        await op(
            api,
            cp,
            "SetChargingProfile",
            {"connectorId": 1, "csChargingProfiles": profile(57, "TxProfile", 6.0, transactionId=tx_id)},
            {"status": "Accepted"},
        )


async def test_tc_059_remote_start_transaction_with_charging_profile(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        payload = {"connectorId": 1, "idTag": tag, "chargingProfile": profile(59, "TxProfile", 16.0)}
        await op(api, cp, "RemoteStartTransaction", payload, {"status": "Accepted"})
        assert (await cp.authorize(tag))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        tx_id = await cp.start_tx(tag)
        await cp.status(1, "Charging")
    assert await active_ids(api, cp_id) == [tx_id]


async def test_tc_066_get_composite_schedule(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        start = iso(utcnow())
        answer = {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": start,
            "chargingSchedule": {
                "duration": 300,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0}],
            },
        }
        await op(
            api,
            cp,
            "GetCompositeSchedule",
            {"connectorId": 1, "duration": 300, "chargingRateUnit": "W"},
            answer,
        )


async def test_tc_067_clear_charging_profile(server, api, cp_id, tag):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        tx_id = await cp.enter_charging(tag)
        for connector, prof in (
            (0, profile(671, "ChargePointMaxProfile", 22000.0)),
            (1, profile(672, "TxDefaultProfile", 11000.0)),
            (1, profile(673, "TxProfile", 7400.0, transactionId=tx_id)),
        ):
            await op(
                api,
                cp,
                "SetChargingProfile",
                {"connectorId": connector, "csChargingProfiles": prof},
                {"status": "Accepted"},
            )
        for clear in (
            {"id": 673},
            {"connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 0},
            {},
        ):
            await op(api, cp, "ClearChargingProfile", clear, {"status": "Accepted"})


# ---------------------------------------------------------------- error paths of the operation API


async def test_operator_call_timeout_is_504(server, api, cp_id):
    async with raw_link(server, cp_id) as link:
        await link.boot()
        # This charge point reads the CALL and never answers it.
        response, frame = await asyncio.gather(
            api.operation_raw(cp_id, "ClearCache", {}, timeout=1), link.recv_frame()
        )
        assert frame[0] == 2 and frame[2] == "ClearCache", frame
        assert response.status_code == 504, response.text
        assert "error" in response.json()
        # A late answer is dropped; the link and the call slot are both fine.
        await link.send_text(json.dumps([3, frame[1], {"status": "Accepted"}]))
        await link.heartbeat_works()

        async def answer_next() -> None:
            nxt = await link.recv_frame()
            assert nxt[0] == 2 and nxt[2] == "ClearCache"
            await link.send_text(json.dumps([3, nxt[1], {"status": "Rejected"}]))

        response, _ = await asyncio.gather(
            api.operation_raw(cp_id, "ClearCache", {}, timeout=5), answer_next()
        )
        assert response.status_code == 200, response.text
        assert response.json()["response"] == {"status": "Rejected"}


async def test_configured_call_timeout_applies_without_query(server_factory):
    srv = server_factory(env={"ORDERLY_CALL_TIMEOUT": "1"})
    api = Api(srv)
    try:
        cp_id = new_id()
        await api.add_charger(cp_id)
        async with raw_link(srv, cp_id) as link:
            await link.boot()
            response, frame = await asyncio.gather(
                api.operation_raw(cp_id, "ClearCache", {}), link.recv_frame()
            )
            assert frame[2] == "ClearCache"
            assert response.status_code == 504, response.text
    finally:
        await api.aclose()


async def test_one_outstanding_call_per_direction(server, api, cp_id):
    async with raw_link(server, cp_id) as link:
        await link.boot()
        first_op = asyncio.create_task(api.operation_raw(cp_id, "ClearCache", {}))
        second_op = asyncio.create_task(api.operation_raw(cp_id, "GetLocalListVersion", {}))
        first = await link.recv_frame()
        # Until the first CALL is answered the second must wait in the server.
        with pytest.raises(AssertionError, match="no frame"):
            await link.recv_frame(timeout=0.5)
        reply = {"ClearCache": {"status": "Accepted"}, "GetLocalListVersion": {"listVersion": 3}}
        await link.send_text(json.dumps([3, first[1], reply[first[2]]]))
        second = await link.recv_frame()
        assert {first[2], second[2]} == {"ClearCache", "GetLocalListVersion"}
        assert second[1] != first[1], "message ids must be unique"
        await link.send_text(json.dumps([3, second[1], reply[second[2]]]))
        r1, r2 = await first_op, await second_op
        assert r1.json()["response"] == {"status": "Accepted"}
        assert r2.json()["response"] == {"listVersion": 3}


async def test_callerror_from_charger_is_502(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        cp.answer("GetConfiguration", NotSupportedError(description="no configuration here"))
        response = await api.operation_raw(cp_id, "GetConfiguration", {"key": ["X"]})
        await cp.expect("GetConfiguration")
    assert response.status_code == 502, response.text
    assert response.json()["call_error"]["code"] == "NotSupported"
    assert response.json()["call_error"]["description"] == "no configuration here"


async def test_operation_on_disconnected_charger_is_409(server, api, cp_id):
    response = await api.operation_raw(cp_id, "ClearCache", {})
    assert response.status_code == 409, response.text


async def test_operation_unknown_action_or_charger_is_404(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        assert (await api.operation_raw(cp_id, "FlyToTheMoon", {})).status_code == 404
    assert (await api.operation_raw(new_id("NOBODY"), "ClearCache", {})).status_code == 404


@pytest.mark.parametrize(
    "action,payload,field",
    [
        ("RemoteStartTransaction", {"connectorId": 1}, "idTag"),
        ("UnlockConnector", {"connectorId": "one"}, "connectorId"),
        ("Reset", {"type": "Sideways"}, "type"),
        ("ChangeConfiguration", {"key": "K" * 51, "value": "1"}, "key"),
    ],
    ids=["missing", "type", "enum", "too-long"],
)
async def test_operation_payload_breaking_schema_is_400(server, api, cp_id, action, payload, field):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        response = await api.operation_raw(cp_id, action, payload)
        assert response.status_code == 400, response.text
        assert field in response.json()["error"], response.text
        # Nothing went on the wire (charge_point() fails on an unscripted CALL).
        await cp.send(call.Heartbeat())


async def test_operations_are_audited_newest_first(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot()
        await op(api, cp, "GetLocalListVersion", {}, {"listVersion": 0})
        await op(api, cp, "ClearCache", {}, {"status": "Accepted"})
    entries = Api.ok(await api.get("/audit"))
    text = [json.dumps(e) for e in entries]
    assert any("ClearCache" in t for t in text) and any("GetLocalListVersion" in t for t in text)
    first_clear = next(i for i, t in enumerate(text) if "ClearCache" in t)
    first_list = next(i for i, t in enumerate(text) if "GetLocalListVersion" in t)
    assert first_clear < first_list, "audit log must be newest first"


async def test_api_requires_the_admin_token(server, api):
    import httpx

    async with httpx.AsyncClient(base_url=server.http_base) as plain:
        assert (await plain.get("/api/v1/chargers")).status_code == 401
        bad = {"Authorization": "Bearer not-the-token"}
        assert (await plain.get("/api/v1/chargers", headers=bad)).status_code == 401
        assert (await plain.post("/api/v1/chargers/x/operations/ClearCache", json={})).status_code == 401
        spec = await plain.get("/api/v1/openapi.json")
        assert spec.status_code == 200
        paths = spec.json()["paths"]
        assert any(p.endswith("/chargers") for p in paths), list(paths)
        assert any("/operations/" in p for p in paths), list(paths)
    assert isinstance(Api.ok(await api.get("/chargers")), list)


async def test_calls_crossing_on_the_wire(server, api, cp_id):
    """ "One outstanding CALL" is per direction: while the server waits for the
    charger's answer, the charger's own CALL must still be answered."""
    async with raw_link(server, cp_id) as link:
        await link.boot()
        pending = asyncio.create_task(api.operation_raw(cp_id, "ClearCache", {}))
        server_call = await link.recv_frame()
        assert server_call[0] == 2 and server_call[2] == "ClearCache", server_call
        await link.heartbeat_works()  # our CALL, while the server's is outstanding
        await link.send_text(json.dumps([3, server_call[1], {"status": "Accepted"}]))
        response = await pending
        assert response.status_code == 200 and response.json()["response"] == {"status": "Accepted"}


async def test_charger_answer_breaking_the_schema_is_not_passed_on_as_valid(server, api, cp_id):
    """A CALLRESULT that breaks the response schema (status not in the enum) is
    the charger's fault; the operator must not get it as a normal 200 answer."""
    async with raw_link(server, cp_id) as link:
        await link.boot()
        pending = asyncio.create_task(api.operation_raw(cp_id, "ClearCache", {}))
        server_call = await link.recv_frame()
        await link.send_text(json.dumps([3, server_call[1], {"status": "Maybe"}]))
        response = await pending
        assert response.status_code != 200, response.text
        assert response.status_code in (502, 504), response.text
        await link.heartbeat_works()


async def test_operation_body_that_is_not_json_is_400(server, api, cp_id):
    async with charge_point(server, cp_id) as cp:
        await cp.boot(connectors=0)
        response = await api.client.post(
            f"/chargers/{cp_id}/operations/ClearCache",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert "error" in response.json()


async def test_a_call_that_timed_out_in_the_queue_is_never_sent(server, api, cp_id):
    """An operator told "timed out" must be able to rely on the charger never
    executing that command later (a RemoteStart arriving minutes late starts a
    session nobody wants)."""
    async with raw_link(server, cp_id) as link:
        await link.boot()
        first = asyncio.create_task(api.operation_raw(cp_id, "ClearCache", {}, timeout=10))
        head = await link.recv_frame()
        assert head[2] == "ClearCache"
        late = await api.operation_raw(
            cp_id, "RemoteStartTransaction", {"connectorId": 1, "idTag": "LATE"}, timeout=1
        )
        assert late.status_code == 504, late.text
        await link.send_text(json.dumps([3, head[1], {"status": "Accepted"}]))
        assert (await first).status_code == 200
        # The RemoteStart must not follow now that the slot is free.
        await link.heartbeat_works()
        with pytest.raises(AssertionError, match="no frame"):
            frame = await link.recv_frame(timeout=0.5)
            raise RuntimeError(f"timed-out call was sent after all: {frame}")
        assert not any(f[0] == 2 for f in link.other_frames), link.other_frames
