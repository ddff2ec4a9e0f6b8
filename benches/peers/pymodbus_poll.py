"""The peer of `cargo bench --bench rtu_bus`: pymodbus's own serial client doing the gateway's
polls on the same paced line: every unit in turn, one read of COUNT input registers each, as
fast as the client goes, for SECONDS.

    python3 pymodbus_poll.py PORT BAUD UNITS COUNT SECONDS
"""

import sys
import time

from pymodbus.client import ModbusSerialClient

port, baud, units, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
client = ModbusSerialClient(port=port, baudrate=baud, parity="N", timeout=0.3, retries=0)
client.connect()
answered = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for unit in range(1, units + 1):
        reply = client.read_input_registers(0, count=count, device_id=unit)
        if not reply.isError():
            answered += 1
print(answered, flush=True)
