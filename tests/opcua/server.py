"""An independent OPC UA server for the gateway's tests (the Python asyncua package).

Usage: python3 server.py PORT
Serves opc.tcp://127.0.0.1:PORT/shopfloor/test/ with one variable of every type the gateway
reads (fixed, known values), a counter that changes every 100 ms, a node with a Bad status,
one with an Uncertain status, one with a fixed source timestamp, and a "wobble" that moves by
0.1 every 100 ms and jumps by 5 every second. Prints READY when it accepts connections and runs
until killed. For the report-by-exception tests it also prints, on stdout, every data-change
filter a client asks for (FILTER node type value) and every notification it queues for a
client (NOTIFY client_handle).
"""

import asyncio
import datetime
import sys

from asyncua import Server, ua
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.monitored_item_service import MonitoredItemService

NS = "urn:shopfloor:test"
SOURCE_TIME = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

TYPES = [
    ("Boolean", True, ua.VariantType.Boolean),
    ("SByte", -8, ua.VariantType.SByte),
    ("Byte", 200, ua.VariantType.Byte),
    ("Int16", -300, ua.VariantType.Int16),
    ("UInt16", 65535, ua.VariantType.UInt16),
    ("Int32", -2147483648, ua.VariantType.Int32),
    ("UInt32", 4294967295, ua.VariantType.UInt32),
    ("Int64", -9007199254740993, ua.VariantType.Int64),
    ("UInt64", 18446744073709551615, ua.VariantType.UInt64),
    ("Float", 1.5, ua.VariantType.Float),
    ("Double", -2.25e300, ua.VariantType.Double),
    ("String", "PA6-GF30", ua.VariantType.String),
    ("DateTime", datetime.datetime(2026, 11, 23, 8, 30, tzinfo=datetime.timezone.utc),
     ua.VariantType.DateTime),
    ("LocalizedText", ua.LocalizedText("Gereed", "nl"), ua.VariantType.LocalizedText),
    ("ByteString", b"\x01\x02\xff", ua.VariantType.ByteString),
]


WOBBLE = [0.0, 0.1, 0.2, 0.3, 0.2, 0.1, 0.0, 0.1, 0.2, 0.3]


def report_filters_and_notifications():
    """Wraps the server's monitored-item service so that a test can see what it was asked."""
    create = MonitoredItemService._create_data_change_monitored_item
    enqueue = InternalSubscription.enqueue_datachange_event

    async def logged_create(self, params):
        flt = params.RequestedParameters.Filter
        if hasattr(flt, "DeadbandType"):
            print(f"FILTER {params.ItemToMonitor.NodeId.to_string()} "
                  f"{ua.DeadbandType(flt.DeadbandType).name} {flt.DeadbandValue}", flush=True)
        return await create(self, params)

    async def logged_enqueue(self, mid, eventdata, maxsize):
        print(f"NOTIFY {eventdata.ClientHandle}", flush=True)
        return await enqueue(self, mid, eventdata, maxsize)

    MonitoredItemService._create_data_change_monitored_item = logged_create
    InternalSubscription.enqueue_datachange_event = logged_enqueue


async def main(port):
    report_filters_and_notifications()
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/shopfloor/test/")
    server.set_server_name("shopfloor test server (asyncua)")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(NS)
    machine = await server.nodes.objects.add_object(ua.NodeId("T", idx), "TestMachine")
    for name, value, vtype in TYPES:
        await machine.add_variable(ua.NodeId(f"T.{name}", idx), name, ua.Variant(value, vtype))
    counter = await machine.add_variable(
        ua.NodeId(5001, idx), "Counter", ua.Variant(0, ua.VariantType.UInt32))
    unit = await machine.add_property(
        ua.NodeId("T.Counter.EngineeringUnits", idx), "EngineeringUnits",
        ua.EUInformation(DisplayName=ua.LocalizedText("pcs")))
    await unit.set_modelling_rule(True)
    broken = await machine.add_variable(
        ua.NodeId("T.Broken", idx), "Broken", ua.Variant(1.0, ua.VariantType.Double))
    unsure = await machine.add_variable(
        ua.NodeId("T.Unsure", idx), "Unsure", ua.Variant(2.0, ua.VariantType.Double))
    stamped = await machine.add_variable(
        ua.NodeId("T.Stamped", idx), "Stamped", ua.Variant(3.0, ua.VariantType.Double))
    wobble = await machine.add_variable(
        ua.NodeId("T.Wobble", idx), "Wobble", ua.Variant(10.0, ua.VariantType.Double))
    async with server:
        await server.write_attribute_value(broken.nodeid, ua.DataValue(
            ua.Variant(1.0, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure)))
        await server.write_attribute_value(unsure.nodeid, ua.DataValue(
            ua.Variant(2.0, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)))
        await server.write_attribute_value(stamped.nodeid, ua.DataValue(
            ua.Variant(3.0, ua.VariantType.Double), SourceTimestamp=SOURCE_TIME))
        print("READY", flush=True)
        n = 0
        while True:
            await asyncio.sleep(0.1)
            n += 1
            await counter.write_value(ua.Variant(n, ua.VariantType.UInt32))
            level = 10.0 + 5.0 * (n // 10) + WOBBLE[n % 10]
            await wobble.write_value(ua.Variant(level, ua.VariantType.Double))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
