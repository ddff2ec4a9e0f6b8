"""An independent Modbus RTU slave for the RTU tests: pymodbus's own servers.

    python3 rtu_server.py serial DEVICE BAUD   # RTU on a serial device (one end of a socat pty pair)
    python3 rtu_server.py tcp PORT             # RTU frames over TCP on 127.0.0.1:PORT

Units 1 and 2 answer: holding register 0 holds 100 * unit, holding register 1 holds
1000 + unit. Unit 3, like every other unit id, is silent: requests for it go unanswered, as for a
unit that is off. Unit 4 is on the line but
every reply it sends has its CRC broken (holding register 0 holds 4444, which must never reach
the gateway as a good value). Prints READY once it serves, and `REQUEST <unit>` for every
request frame it reads, and
`CONNECTED` for every TCP connection it accepts.
"""

import asyncio
import logging
import sys

from pymodbus import FramerType
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

SILENT_UNIT = 3
CORRUPT_UNIT = 4
ANSWERING = (1, 2, CORRUPT_UNIT)


def device(unit):
    first = 4444 if unit == CORRUPT_UNIT else 100 * unit
    # pymodbus's data blocks are 1-based: block address 1 is protocol address 0.
    return ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, [first, 1000 + unit] + [0] * 30))


def trace_connect(connected):
    print("CONNECTED" if connected else "DISCONNECTED", flush=True)


def trace_packet(sending, data):
    if not sending:
        if len(data) >= 1:
            print(f"REQUEST {data[0]}", flush=True)
        return data
    if len(data) >= 3 and data[0] not in ANSWERING:
        # pymodbus answers an unknown unit with an exception even when told to ignore it:
        # such a unit is made silent here, as a unit missing from a real bus is.
        return b""
    if len(data) >= 3 and data[0] == CORRUPT_UNIT:
        broken = bytearray(data)
        broken[-1] ^= 0x5A
        return bytes(broken)
    return data


async def main():
    logging.basicConfig(level=logging.ERROR)
    context = ModbusServerContext(devices={u: device(u) for u in (1, 2, SILENT_UNIT, CORRUPT_UNIT)}, single=False)
    mode = sys.argv[1]
    if mode == "serial":
        server = ModbusSerialServer(
            context,
            framer=FramerType.RTU,
            port=sys.argv[2],
            baudrate=int(sys.argv[3]),
            parity="N",
            ignore_missing_devices=True,
            trace_packet=trace_packet,
        )
    else:
        server = ModbusTcpServer(
            context,
            framer=FramerType.RTU,
            address=("127.0.0.1", int(sys.argv[2])),
            ignore_missing_devices=True,
            trace_packet=trace_packet,
            trace_connect=trace_connect,
        )
    await server.serve_forever(background=True)
    print("READY", flush=True)
    await server.serving


asyncio.run(main())
