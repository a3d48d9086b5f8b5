"""OpenADR 2.0b: the server's VEN against an independent VTN, openleadr's OpenADRServer
(pinned in requirements.txt), started here in the test's event loop on a free port.

The real `orderly` binary runs with an `[openadr]` section pointing at the VTN and one
community with chargers. The VTN sees the VEN register, offer and send telemetry (the
community's charging load, kW), and answer events with oadrCreatedEvent; each event becomes a
grid command of the community (API: /communities/{id}/grid-commands, source OpenADR), a
cancellation cancels it. openleadr validates every message the VEN sends against the 2.0b XSD
and answers 400 otherwise, so the exchange going through is also the schema check.

The second test gives the VTN its own on_poll, to send what a VTN may send from a poll besides
events (oadrCreateReport, oadrCancelReport, oadrRequestReregistration) and an event written
the 2.0b way (interval durations only, setpoint in W), answered through on_created_event.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from openleadr import OpenADRServer, enums

from harness import EVENT_TIMEOUT, Api, SimChargePoint, call, iso, new_tag, open_ws, utcnow

COMMUNITY = "oadr-test"
RATING_KVA = 100.0
POWER_FACTOR = 0.9
CAPACITY_KW = RATING_KVA * POWER_FACTOR  # what SIMPLE levels scale by
VEN_NAME = "orderly-test-ven"
VEN_ID = "ven-orderly-1"
REGISTRATION_ID = "reg-orderly-1"
VTN_ID = "vtn-test"

# openleadr 0.5.36 stores itself in its aiohttp app under a str key (aiohttp ≥ 3.10 warns).
pytestmark = pytest.mark.filterwarnings("ignore:It is recommended to use web.AppKey")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vtn:
    """openleadr's VTN with recording handlers."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
        self.registrations: list[dict] = []
        self.registered = asyncio.Event()
        self.known = False
        self.report_offers: list[dict] = []
        self.offered = asyncio.Event()
        self.readings: list[tuple[datetime, float]] = []
        self.reading = asyncio.Event()
        self.opts: dict[str, asyncio.Future] = {}
        # Every message openleadr accepted (XSD-valid and parsed), in order.
        self.handled: list[tuple[str, dict]] = []
        self.handled_changed = asyncio.Event()
        self.server = OpenADRServer(
            vtn_id=VTN_ID,
            http_host="127.0.0.1",
            http_port=port,
            ven_lookup=self.ven_lookup,
            requested_poll_freq=timedelta(seconds=1),
        )
        self.server.add_handler("on_create_party_registration", self.on_create_party_registration)
        self.server.add_handler("on_register_report", self.on_register_report)

    def ven_lookup(self, ven_id: str) -> dict | None:
        # `known`, not `registered`: the tests clear `registered` to wait for the next one.
        if ven_id == VEN_ID and self.known:
            return {"ven_id": VEN_ID, "ven_name": VEN_NAME, "registration_id": REGISTRATION_ID}
        return None

    async def on_create_party_registration(self, info: dict):
        self.registrations.append(info)
        if info.get("ven_name") != VEN_NAME:
            return False
        self.known = True
        self.registered.set()
        return VEN_ID, REGISTRATION_ID

    async def on_register_report(self, ven_id, resource_id, measurement, unit, scale,
                                 min_sampling_interval, max_sampling_interval):
        self.report_offers.append(dict(ven_id=ven_id, resource_id=resource_id, measurement=measurement,
                                       unit=unit, scale=scale, min=min_sampling_interval,
                                       max=max_sampling_interval))
        self.offered.set()
        return self.on_data, min_sampling_interval

    async def on_data(self, data: list[tuple[datetime, float]]) -> None:
        self.readings.extend(data)
        self.reading.set()

    async def before_handle(self, message_type: str, payload: dict) -> None:
        self.handled.append((message_type, payload))
        self.handled_changed.set()

    async def wait_handled(self, predicate, what: str, server, since: int = 0) -> tuple[str, dict]:
        """The first message from index `since` on that satisfies `predicate(type, payload)`."""
        deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT
        seen = since
        while True:
            for message in self.handled[seen:]:
                if predicate(*message):
                    return message
            seen = len(self.handled)
            self.handled_changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"VTN got no {what}; got {[m[0] for m in self.handled]}\n"
                                     f"{server.log_tail()}")
            try:
                await asyncio.wait_for(self.handled_changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def add_event(self, event_id: str, signal_name: str, signal_type: str, intervals: list[dict]) -> asyncio.Future:
        opt: asyncio.Future = asyncio.get_running_loop().create_future()
        self.opts[event_id] = opt
        self.server.add_event(ven_id=VEN_ID, signal_name=signal_name, signal_type=signal_type,
                              intervals=intervals, callback=opt, event_id=event_id,
                              market_context="oadr://orderly.test/dr")
        return opt


@pytest.fixture
async def vtn():
    from openleadr import hooks

    v = Vtn(free_port())
    hooks.register("before_handle", v.before_handle)
    await v.server.run_async()
    yield v
    await v.server.stop()
    hooks.HOOKS["before_handle"].remove(v.before_handle)


def config_toml(vtn_url: str) -> str:
    chargers = ",\n".join(
        f'  {{ id = "OADR{i}", phases = 1, voltage_v = 220.0, max_current_a = 32.0 }}' for i in range(2)
    )
    return f"""
[[communities]]
id = "{COMMUNITY}"
rating_kva = {RATING_KVA}
power_factor = {POWER_FACTOR}
base_load_kw = 20.0
chargers = [
{chargers}
]

[openadr]
vtn_url = "{vtn_url}"
ven_name = "{VEN_NAME}"
community = "{COMMUNITY}"
report_interval_secs = 1
poll_interval_secs = 1
"""


@pytest.fixture
def backend() -> str:
    # The VEN does not depend on the database: run it on SQLite only.
    return "sqlite"


async def wait_for(event: asyncio.Event, what: str, server) -> None:
    try:
        await asyncio.wait_for(event.wait(), EVENT_TIMEOUT)
    except asyncio.TimeoutError:
        raise AssertionError(f"VTN saw no {what} within {EVENT_TIMEOUT}s\n{server.log_tail()}") from None


async def openadr_commands(api: Api, event_id: str) -> list[dict[str, Any]]:
    records = api.ok(await api.get(f"/communities/{COMMUNITY}/grid-commands"))
    items = records["items"] if isinstance(records, dict) and "items" in records else records
    return [c for c in items if event_id in str(c.get("source"))]


async def poll_commands(api: Api, event_id: str, predicate, what: str) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT
    while True:
        commands = await openadr_commands(api, event_id)
        if predicate(commands):
            return commands
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: grid commands of {event_id} are {commands}")
        await asyncio.sleep(0.2)


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_ven_registers_reports_and_turns_events_into_grid_commands(server_factory, vtn):
    server = server_factory(
        before_start=lambda srv: (srv.data_dir / "orderly.toml").write_text(config_toml(vtn.url))
    )
    api = Api(server)
    try:
        # Registration: oadrQueryRegistration, then oadrCreatePartyRegistration with our name.
        await wait_for(vtn.registered, "oadrCreatePartyRegistration", server)
        reg = vtn.registrations[-1]
        assert reg["ven_name"] == VEN_NAME
        assert reg["http_pull_model"] is True and reg["xml_signature"] is False
        assert reg["profile_name"] == "2.0b" and reg["transport_name"] == "simpleHttp"

        # Telemetry offer: the community's charging load as real power in kW.
        await wait_for(vtn.offered, "oadrRegisterReport", server)
        offer = vtn.report_offers[-1]
        assert offer["ven_id"] == VEN_ID
        assert offer["resource_id"] == COMMUNITY
        assert (offer["measurement"], offer["unit"], offer["scale"]) == ("RealPower", "W", "k")
        assert offer["min"] == timedelta(seconds=1)

        # Reports arrive (oadrCreatedReport, then oadrUpdateReport every second). No car is
        # charging, so the load is 0 kW.
        await wait_for(vtn.reading, "oadrUpdateReport with data", server)
        at, value = vtn.readings[-1]
        assert value == pytest.approx(0.0)
        assert abs((at - datetime.now(timezone.utc)).total_seconds()) < 60

        # A LOAD_DISPATCH setpoint event: limit the community to 40 kW for 30 minutes.
        start = (datetime.now(timezone.utc) + timedelta(minutes=2)).replace(microsecond=0)
        opt = vtn.add_event("evt-dispatch", "LOAD_DISPATCH", "setpoint",
                            [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 40.0}])
        assert await asyncio.wait_for(opt, EVENT_TIMEOUT) == "optIn"

        commands = await poll_commands(api, "evt-dispatch", lambda cs: len(cs) == 1, "LOAD_DISPATCH command")
        c = commands[0]
        assert c["community"] == COMMUNITY
        assert c["kind"] == "limit" and c["kw"] == pytest.approx(40.0)
        assert instant(c["start"]) == start
        assert instant(c["end"]) == start + timedelta(minutes=30)
        assert c["source"] == {"source": "openadr", "vtn_id": VTN_ID, "event_id": "evt-dispatch",
                               "modification_number": 0}, c
        assert c["status"] == "scheduled"

        # The VTN modifies the event (new setpoint, modificationNumber 1): the same command is
        # updated in place.
        event = next(e for e in vtn.server.events[VEN_ID] if e.event_descriptor.event_id == "evt-dispatch")
        event.event_signals[0].intervals[0]["signal_payload"] = 30.0
        event.event_descriptor.modification_number += 1
        vtn.server.events_updated[VEN_ID] = True
        commands = await poll_commands(
            api, "evt-dispatch",
            lambda cs: len(cs) == 1 and cs[0]["source"]["modification_number"] == 1, "modified command")
        assert commands[0]["id"] == c["id"]
        assert commands[0]["kw"] == pytest.approx(30.0)
        assert commands[0]["status"] == "scheduled"

        # A SIMPLE level 2 event: reduce by 25 % of the capacity.
        start2 = start + timedelta(hours=1)
        opt2 = vtn.add_event("evt-simple", "SIMPLE", "level",
                             [{"dtstart": start2, "duration": timedelta(minutes=15), "signal_payload": 2}])
        assert await asyncio.wait_for(opt2, EVENT_TIMEOUT) == "optIn"
        commands = await poll_commands(api, "evt-simple", lambda cs: len(cs) == 1, "SIMPLE command")
        assert commands[0]["kind"] == "reduce"
        assert commands[0]["kw"] == pytest.approx(0.25 * CAPACITY_KW)

        # An event the community cannot act on (a price) is opted out of, and makes no command.
        opt3 = vtn.add_event("evt-price", "ELECTRICITY_PRICE", "price",
                             [{"dtstart": start2, "duration": timedelta(minutes=15), "signal_payload": 1.2}])
        assert await asyncio.wait_for(opt3, EVENT_TIMEOUT) == "optOut"
        assert await openadr_commands(api, "evt-price") == []

        # Cancelling the dispatch event cancels its command; the other stays.
        vtn.server.cancel_event(VEN_ID, "evt-dispatch")
        await poll_commands(api, "evt-dispatch", lambda cs: len(cs) == 1 and cs[0]["status"] == "cancelled",
                            "cancelled command")
        assert (await openadr_commands(api, "evt-simple"))[0]["status"] == "scheduled"
        # The VTN got the VEN's acknowledgement of the cancellation and dropped the event.
        deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT
        while any(e.event_descriptor.event_id == "evt-dispatch" for e in vtn.server.events.get(VEN_ID, [])):
            assert asyncio.get_running_loop().time() < deadline, "VTN still holds the cancelled event"
            await asyncio.sleep(0.2)

        # Telemetry follows the community's measured charging load: a car charging at 7.4 kW
        # on one of its chargers (MeterValues Power.Active.Import) shows in the next reports.
        tag = new_tag("OADR")
        await api.add_tag(tag, "Accepted")
        ws = await open_ws(server, "OADR0")
        cp = SimChargePoint("OADR0", ws)
        for action in ("SetChargingProfile", "ClearChargingProfile"):
            cp.answer(action, {"status": "Accepted"})
        cp.answer("GetConfiguration", {"configurationKey": [], "unknownKey": []})
        cp.answer("ChangeConfiguration", {"status": "Accepted"})
        cp.answer("TriggerMessage", {"status": "Accepted"})
        loop = asyncio.create_task(cp.start())
        try:
            await cp.boot(connectors=1)
            tx = await cp.enter_charging(tag, connector=1)
            now = utcnow()
            await cp.send(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
                "timestamp": iso(now),
                "sampledValue": [
                    {"value": "7400", "measurand": "Power.Active.Import", "unit": "W",
                     "context": "Sample.Periodic"},
                    {"value": "100", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
                     "context": "Sample.Periodic"},
                ],
            }]))
            deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT
            while not any(v > 0 for _, v in vtn.readings):
                assert asyncio.get_running_loop().time() < deadline, \
                    f"no non-zero charging load reported: {vtn.readings[-5:]}\n{server.log_tail()}"
                vtn.reading.clear()
                await asyncio.wait_for(vtn.reading.wait(), EVENT_TIMEOUT)
            assert [v for _, v in vtn.readings if v > 0][0] == pytest.approx(7.4)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop
            await ws.close()
    finally:
        await api.aclose()


class ScriptedVtn(Vtn):
    """The VTN with its own on_poll (openleadr's "external" polling): each poll answers with
    the next scripted message, which exercises what the VEN must handle from a poll besides
    events — oadrCreateReport, oadrCancelReport, oadrRequestReregistration — and reports every
    VEN answer to on_created_event."""

    def __init__(self, port: int):
        super().__init__(port)
        self.script: asyncio.Queue = asyncio.Queue()
        self.created_events: list[tuple[str, str, str]] = []
        self.created_event = asyncio.Event()
        self.server.add_handler("on_poll", self.on_poll)
        self.server.add_handler("on_created_event", self.on_created_event)

    async def on_poll(self, ven_id: str):
        try:
            return self.script.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def on_created_event(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.created_events.append((ven_id, event_id, opt_type))
        self.created_event.set()

@pytest.fixture
async def scripted_vtn():
    from openleadr import hooks

    v = ScriptedVtn(free_port())
    hooks.register("before_handle", v.before_handle)
    await v.server.run_async()
    yield v
    await v.server.stop()
    hooks.HOOKS["before_handle"].remove(v.before_handle)


async def test_ven_follows_report_requests_reregistration_and_event_units(server_factory, scripted_vtn):
    from openleadr import objects, utils

    vtn = scripted_vtn
    server = server_factory(
        before_start=lambda srv: (srv.data_dir / "orderly.toml").write_text(config_toml(vtn.url))
    )
    api = Api(server)
    try:
        await wait_for(vtn.registered, "oadrCreatePartyRegistration", server)
        await wait_for(vtn.offered, "oadrRegisterReport", server)
        _, register = await vtn.wait_handled(lambda t, p: t == "oadrRegisterReport", "oadrRegisterReport", server)
        specifier = register["reports"][0]["report_specifier_id"]
        r_id = register["reports"][0]["report_descriptions"][0]["r_id"]

        # oadrCreateReport from a poll: the VEN confirms (oadrCreatedReport names the request)
        # and sends that report every 2 s with readings every second.
        vtn.script.put_nowait(("oadrCreateReport", {"report_requests": [{
            "report_request_id": "rr-extra",
            "report_specifier": {"report_specifier_id": specifier,
                                 "granularity": timedelta(seconds=1),
                                 "report_back_duration": timedelta(seconds=2),
                                 "specifier_payloads": [{"r_id": r_id, "reading_type": "Direct Read"}]}}]}))
        _, created = await vtn.wait_handled(
            lambda t, p: t == "oadrCreatedReport"
            and any(r["report_request_id"] == "rr-extra" for r in p.get("pending_reports", [])),
            "oadrCreatedReport for rr-extra", server)
        assert created["response"]["response_code"] == 200
        _, update = await vtn.wait_handled(
            lambda t, p: t == "oadrUpdateReport" and p["reports"][0]["report_request_id"] == "rr-extra",
            "oadrUpdateReport for rr-extra", server)
        report = update["reports"][0]
        assert report["report_name"] == "TELEMETRY_USAGE"
        assert all(i["report_payload"]["r_id"] == r_id for i in report["intervals"])

        # oadrCancelReport: acknowledged with oadrCanceledReport, and no more of that report.
        # (openleadr 0.5.36 has no handler for oadrCanceledReport: it validates and parses it,
        # then answers 459, which the VEN logs.)
        vtn.script.put_nowait(("oadrCancelReport", {"report_request_id": "rr-extra", "report_to_follow": False}))
        _, canceled = await vtn.wait_handled(lambda t, p: t == "oadrCanceledReport", "oadrCanceledReport", server)
        assert canceled["response"]["response_code"] == 200 and canceled["response"]["request_id"]
        assert "rr-extra" not in [r["report_request_id"] for r in canceled.get("pending_reports") or []]

        # An event in 2.0b's own interval form (durations only, no per-interval start), with
        # the setpoint in W (itemBase powerReal, scale none): 35 kW then 25 kW.
        start = (datetime.now(timezone.utc) + timedelta(minutes=5)).replace(microsecond=0)
        event = objects.Event(
            event_descriptor=objects.EventDescriptor(event_id="evt-watts", modification_number=0,
                                                     market_context="oadr://orderly.test/dr",
                                                     event_status="far"),
            active_period=objects.ActivePeriod(dtstart=start, duration=timedelta(minutes=20)),
            event_signals=[objects.EventSignal(
                intervals=[{"dtstart": None, "duration": timedelta(minutes=10), "signal_payload": 35000.0, "uid": 0},
                           {"dtstart": None, "duration": timedelta(minutes=10), "signal_payload": 25000.0, "uid": 1}],
                signal_name="LOAD_DISPATCH", signal_type="setpoint", signal_id=utils.generate_id(),
                measurement=enums.MEASUREMENTS.REAL_POWER)],
            targets=[{"ven_id": VEN_ID}])
        vtn.script.put_nowait(event)
        await wait_for(vtn.created_event, "oadrCreatedEvent", server)
        assert vtn.created_events[-1] == (VEN_ID, "evt-watts", "optIn")
        commands = await poll_commands(api, "evt-watts", lambda cs: len(cs) == 2, "two commands from evt-watts")
        got = sorted((instant(c["start"]), instant(c["end"]), c["kind"], c["kw"]) for c in commands)
        assert got == [
            (start, start + timedelta(minutes=10), "limit", pytest.approx(35.0)),
            (start + timedelta(minutes=10), start + timedelta(minutes=20), "limit", pytest.approx(25.0)),
        ]

        # One request is in flight at a time and the cancellation removed the report at once:
        # nothing of rr-extra came after the oadrCanceledReport.
        after = next(i for i, m in enumerate(vtn.handled) if m[1] is canceled)
        assert not [p for t, p in vtn.handled[after:]
                    if t == "oadrUpdateReport" and p["reports"][0]["report_request_id"] == "rr-extra"]

        # oadrRequestReregistration: the VEN acknowledges and registers again under its venID.
        vtn.registered.clear()
        vtn.offered.clear()
        vtn.script.put_nowait(("oadrRequestReregistration", {}))
        await wait_for(vtn.registered, "oadrCreatePartyRegistration after oadrRequestReregistration", server)
        assert vtn.registrations[-1].get("ven_id") == VEN_ID
        assert vtn.registrations[-1].get("registration_id") == REGISTRATION_ID
        await wait_for(vtn.offered, "oadrRegisterReport after re-registration", server)
        # The event's commands stand (the VTN did not cancel it).
        assert all(c["status"] == "scheduled" for c in await openadr_commands(api, "evt-watts"))

        # oadrCancelPartyRegistration: acknowledged with oadrCanceledPartyRegistration; the
        # registration's events are void (their commands cancelled) and the VEN registers anew.
        mark, registrations = len(vtn.handled), len(vtn.registrations)
        vtn.script.put_nowait(("oadrCancelPartyRegistration", {"registration_id": REGISTRATION_ID}))
        _, cancelled = await vtn.wait_handled(lambda t, p: t == "oadrCanceledPartyRegistration",
                                              "oadrCanceledPartyRegistration", server, since=mark)
        assert cancelled["registration_id"] == REGISTRATION_ID and cancelled["ven_id"] == VEN_ID
        after = next(i for i, m in enumerate(vtn.handled) if m[1] is cancelled)
        await vtn.wait_handled(lambda t, p: t == "oadrCreatePartyRegistration",
                               "oadrCreatePartyRegistration after the cancellation", server, since=after)
        assert len(vtn.registrations) == registrations + 1
        assert vtn.registrations[-1].get("ven_id") is None
        await poll_commands(api, "evt-watts", lambda cs: cs and all(c["status"] == "cancelled" for c in cs),
                            "commands cancelled with the registration")
    finally:
        await api.aclose()


async def test_ven_relearns_events_after_a_server_restart(server_factory, vtn):
    server = server_factory(
        before_start=lambda srv: (srv.data_dir / "orderly.toml").write_text(config_toml(vtn.url))
    )
    api = Api(server)
    try:
        await wait_for(vtn.registered, "oadrCreatePartyRegistration", server)
        start = (datetime.now(timezone.utc) + timedelta(minutes=10)).replace(microsecond=0)
        opt = vtn.add_event("evt-restart", "LOAD_DISPATCH", "setpoint",
                            [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 30.0}])
        assert await asyncio.wait_for(opt, EVENT_TIMEOUT) == "optIn"
        before = await poll_commands(api, "evt-restart", lambda cs: len(cs) == 1, "command before restart")
    finally:
        await api.aclose()

    # Restart on the same storage. openleadr only distributes an event again when it changes,
    # so the VEN learns it back through oadrRequestEvent after registering, answers it, and the
    # stored command is the same record (keyed by the event), not a second one.
    mark = len(vtn.handled)
    vtn.registered.clear()
    server.restart()
    api = Api(server)
    try:
        await wait_for(vtn.registered, "oadrCreatePartyRegistration after the restart", server)
        await vtn.wait_handled(lambda t, p: t == "oadrRequestEvent", "oadrRequestEvent after the restart",
                               server, since=mark)
        _, created = await vtn.wait_handled(lambda t, p: t == "oadrCreatedEvent",
                                            "oadrCreatedEvent after the restart", server, since=mark)
        assert [(r["event_id"], r["opt_type"]) for r in created["event_responses"]] == [("evt-restart", "optIn")]
        after = await openadr_commands(api, "evt-restart")
        assert [(c["id"], c["kw"], c["status"]) for c in after] == [(before[0]["id"], 30.0, "scheduled")]
    finally:
        await api.aclose()


async def test_ven_registers_once_a_late_vtn_comes_up(server_factory):
    """The VTN is down when the server starts: the VEN retries (every 5 s) and registers once
    it is up, then carries on as usual."""
    from openleadr import hooks

    vtn = Vtn(free_port())
    server = server_factory(
        before_start=lambda srv: (srv.data_dir / "orderly.toml").write_text(config_toml(vtn.url))
    )
    # Wait until the VEN has tried and failed at least once (its warning in the server log).
    deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT
    while "oadrQueryRegistration to the VTN failed" not in server.log_path.read_text(errors="replace"):
        assert asyncio.get_running_loop().time() < deadline, server.log_tail()
        await asyncio.sleep(0.1)
    hooks.register("before_handle", vtn.before_handle)
    await vtn.server.run_async()
    try:
        await wait_for(vtn.registered, "oadrCreatePartyRegistration from a VEN that had failed", server)
        await wait_for(vtn.reading, "oadrUpdateReport", server)
    finally:
        await vtn.server.stop()
        hooks.HOOKS["before_handle"].remove(vtn.before_handle)
