"""An independent Sparkplug B edge node for the recorder's tests, built on pysparkplug's own
EdgeNode and Device classes: node `line-3` of group `fieldlab`, one device `oven` whose
metrics (with aliases) change every 20 ms.

    python3 edge.py BROKER_PORT

Prints READY once connected, then one JSON line per DDATA it publishes (`{"type": "DDATA",
"timestamp", "values": {name: value}}`). An NCMD `Node Control/Rebirth` is answered with NBIRTH
(seq 0) and the DBIRTH (printed as REBIRTH_DONE). 300 DDATA after the first rebirth it sends one
DDATA with an alias its birth never held (printed as UNKNOWN_ALIAS_SENT), and it stops
publishing 50 DDATA after the second rebirth (printed as DONE)."""

import itertools
import json
import sys
import threading
import time

from pysparkplug import (
    Client,
    DataType,
    DBirth,
    DData,
    Device,
    EdgeNode,
    Message,
    MessageType,
    Metric,
    NBirth,
    QoS,
    Topic,
    get_current_timestamp,
)

port = int(sys.argv[1])
GROUP, NODE, DEVICE = "fieldlab", "line-3", "oven"
TYPES = {
    "temperature": (1, DataType.DOUBLE),
    "door_open": (2, DataType.BOOLEAN),
    "parts": (3, DataType.UINT32),
    "recipe": (4, DataType.STRING),
}
lock = threading.Lock()
rebirths = 0
since_rebirth = 0
ghost_sent = False


def out(line):
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def metric(name, value, ts):
    alias, datatype = TYPES[name]
    return Metric(timestamp=ts, name=name, datatype=datatype, value=value, alias=alias)


def values(i):
    return {
        "temperature": 180.0 + (i % 50) * 0.25,
        "door_open": i % 7 == 0,
        "parts": 1000 + i,
        "recipe": f"R-{i // 40}",
    }


def rebirth(node):
    """NBIRTH with seq 0 and the same bdSeq, then the device's DBIRTH, as the spec asks."""
    global rebirths, since_rebirth
    with lock:
        node._EdgeNode__seq_cycler = itertools.cycle(range(256))
        ts = get_current_timestamp()
        nbirth = NBirth(timestamp=ts, seq=node._seq, metrics=(node._bd_seq_metric,))
        node._client.publish(
            Message(topic=Topic(message_type=MessageType.NBIRTH, group_id=GROUP, edge_node_id=NODE),
                    payload=nbirth, qos=QoS.AT_MOST_ONCE, retain=False),
            include_dtypes=True,
        )
        device = node.devices[DEVICE]
        dbirth = DBirth(timestamp=ts, seq=node._seq, metrics=tuple(device.metrics.values()))
        node._client.publish(
            Message(topic=Topic(message_type=MessageType.DBIRTH, group_id=GROUP, edge_node_id=NODE,
                                device_id=DEVICE),
                    payload=dbirth, qos=QoS.AT_MOST_ONCE, retain=False),
            include_dtypes=True,
        )
        rebirths += 1
        since_rebirth = 0
        out({"type": "REBIRTH_DONE", "n": rebirths})


def on_command(node, message):
    for m in message.payload.metrics:
        if m.name == "Node Control/Rebirth" and m.value:
            rebirth(node)


def ghost(node):
    """A DDATA whose alias no birth announced: the host must ask for a rebirth."""
    ts = get_current_timestamp()
    stray = Metric(timestamp=ts, name=None, datatype=DataType.INT32, value=1, alias=99)
    node._client.publish(
        Message(topic=Topic(message_type=MessageType.DDATA, group_id=GROUP, edge_node_id=NODE,
                            device_id=DEVICE),
                payload=DData(timestamp=ts, seq=node._seq, metrics=(stray,)),
                qos=QoS.AT_MOST_ONCE, retain=False),
        include_dtypes=True,
    )
    out({"type": "UNKNOWN_ALIAS_SENT"})


ts = get_current_timestamp()
node = EdgeNode(GROUP, NODE, metrics=(), client=Client(client_id="sparkplug-test-edge"),
                cmd_callback=on_command)
node.register(Device(DEVICE, metrics=[metric(n, v, ts) for n, v in values(0).items()]))
node.connect("127.0.0.1", port=port, blocking=False)
while not node._connected:
    time.sleep(0.01)
sys.stdout.write("READY\n")
sys.stdout.flush()

i = 0
while True:
    time.sleep(0.02)
    i += 1
    with lock:
        ts = get_current_timestamp()
        now = values(i)
        node.update_device(DEVICE, [metric(n, v, ts) for n, v in now.items()])
        out({"type": "DDATA", "timestamp": ts, "values": now, "after_rebirth": rebirths})
        since_rebirth += 1
        if rebirths == 1 and since_rebirth == 300 and not ghost_sent:
            ghost_sent = True
            ghost(node)
        if rebirths >= 2 and since_rebirth >= 50:
            out({"type": "DONE"})
            break
while True:
    time.sleep(1)
