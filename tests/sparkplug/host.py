"""An independent Sparkplug B host for the tests, built on pysparkplug (its protobuf, topic and
payload classes) and paho: subscribes to spBv1.0/#, decodes every message (births remembered per
node and device, so that data decodes by alias), and prints one JSON line per message, with the
payload's bytes in hex as `raw`.

    python3 host.py BROKER_PORT [--rebirth-after N] [--persistent] [--primary ID [--offline-after N]]
                            [--rebirth-unknown]

With --rebirth-after N it sends the edge node of the first NBIRTH an NCMD `Node Control/Rebirth`
once it has seen N DDATA messages. With --persistent its session outlives a broker restart
(clean session off, a fixed client id), so that what the broker queued for it while it was
reconnecting reaches it. With --primary ID it is that primary host application: its will is
the retained STATE `online: false`, and once subscribed it says `online: true` (retained). With
--offline-after N it then says, after N DDATA, `online: false` with an older timestamp (not
retained: a late duplicate the edge node must ignore), after 2N DDATA `online: false` for
real, and once it has seen the NDEATH that answers it, `online: true` again. Every STATE it
sends is printed as STATE_SENT. With --rebirth-unknown, a message from a node whose NBIRTH it
has not seen (it came in late) is printed as UNKNOWN and answered, once per node, with an NCMD
Rebirth, as a host application does. Prints READY once subscribed."""

import json
import sys
import time

import paho.mqtt.client as mqtt
from pysparkplug import DataType, Message, MessageType, Metric, NCmd, Topic
from pysparkplug._protobuf import Payload as PbPayload

port = int(sys.argv[1])
rebirth_after = int(sys.argv[sys.argv.index("--rebirth-after") + 1]) if "--rebirth-after" in sys.argv else None
primary = sys.argv[sys.argv.index("--primary") + 1] if "--primary" in sys.argv else None
offline_after = int(sys.argv[sys.argv.index("--offline-after") + 1]) if "--offline-after" in sys.argv else None
rebirth_unknown = "--rebirth-unknown" in sys.argv
asked_nodes = set()
births = {}
ddata = 0
node = None
asked = False
# The STATE script's progress: online, stale sent, offline sent, online again.
step = 0
online_at = 0


def out(line):
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def props(pb_metric):
    """engUnit and Quality straight from the protobuf (pysparkplug's Metric leaves them out)."""
    found = {}
    p = pb_metric.properties
    for key, value in zip(p.keys, p.values):
        kind = value.WhichOneof("value")
        found[key] = getattr(value, kind) if kind else None
    return found


def value_of(metric):
    v = metric.value
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def now():
    return int(time.time() * 1000)


def say(client, online, timestamp, retain=True, note=None):
    payload = json.dumps({"online": online, "timestamp": timestamp})
    client.publish(f"spBv1.0/STATE/{primary}", payload, qos=1, retain=retain)
    out({"type": "STATE_SENT", "online": online, "timestamp": timestamp, "note": note})


def follow_script(client, kind):
    """The --offline-after steps, driven by what the host has seen."""
    global step
    if offline_after is None:
        return
    if step == 0 and kind == "DDATA" and ddata >= offline_after:
        step = 1
        say(client, False, online_at - 1, retain=False, note="stale")
    elif step == 1 and kind == "DDATA" and ddata >= 2 * offline_after:
        step = 2
        say(client, False, now())
    elif step == 2 and kind == "NDEATH":
        step = 3
        say(client, True, now())


def on_message(client, userdata, msg):
    try:
        handle(client, msg)
    except Exception as e:  # paho would swallow it; the test must see it
        out({"topic": msg.topic, "type": "HOST_ERROR", "error": repr(e)})


def handle(client, msg):
    global ddata, node, asked
    topic = Topic.from_str(msg.topic)
    kind = str(topic.message_type)
    if kind == "STATE":
        return
    key = (topic.group_id, topic.edge_node_id, topic.device_id)
    node_key = (topic.group_id, topic.edge_node_id, None)
    if rebirth_unknown and kind not in ("NBIRTH", "NDEATH", "NCMD") and node_key not in births:
        out({"topic": msg.topic, "type": "UNKNOWN", "device": topic.device_id})
        if node_key not in asked_nodes:
            asked_nodes.add(node_key)
            ask_rebirth(client, node_key[:2])
        return
    try:
        message = Message.from_mqtt_message(msg, birth=births.get(key))
    except Exception as e:  # an undecodable message is what the test must see
        out({"topic": msg.topic, "type": kind, "error": repr(e), "birth_known": key in births})
        return
    payload = message.payload
    # The payload as received, for a second decoder (tahu.js) to read the same bytes.
    line = {"topic": msg.topic, "type": kind, "device": topic.device_id, "qos": msg.qos, "retain": msg.retain, "raw": msg.payload.hex()}
    if kind == "NDEATH":
        line["bd_seq"] = payload.bd_seq_metric.value
        out(line)
        follow_script(client, kind)
        return
    line["seq"] = getattr(payload, "seq", None)
    pb_payload = PbPayload.FromString(msg.payload)
    # From the wire, not the decoded object: a missing timestamp must show as missing.
    line["timestamp"] = pb_payload.timestamp if pb_payload.HasField("timestamp") else None
    metrics = getattr(payload, "metrics", ())
    raw = pb_payload.metrics
    line["metrics"] = [
        {
            "name": m.name,
            "alias": m.alias,
            "datatype": m.datatype.name if m.datatype is not None else None,
            "value": value_of(m),
            "is_null": m.is_null,
            "historical": m.is_historical,
            "timestamp": pb.timestamp if pb.HasField("timestamp") else None,
            "properties": props(pb),
        }
        for m, pb in zip(metrics, raw)
    ]
    if kind in ("NBIRTH", "DBIRTH"):
        births[key] = payload
        if kind == "NBIRTH":
            line["bd_seq"] = next((m.value for m in metrics if m.name == "bdSeq"), None)
            node = node or (topic.group_id, topic.edge_node_id)
    out(line)
    if kind == "DDATA":
        ddata += 1
        follow_script(client, kind)
        if rebirth_after is not None and ddata >= rebirth_after and not asked and node:
            asked = True
            ask_rebirth(client, node)


def ask_rebirth(client, node):
    """An NCMD setting Node Control/Rebirth to node (group, edge node)."""
    command = NCmd(
        timestamp=now(),
        metrics=(
            Metric(
                timestamp=now(),
                name="Node Control/Rebirth",
                datatype=DataType.BOOLEAN,
                value=True,
            ),
        ),
    )
    client.publish(f"spBv1.0/{node[0]}/NCMD/{node[1]}", command.encode(include_dtypes=True), qos=0)
    out({"type": "REBIRTH_SENT", "node": list(node)})


def on_subscribe(client, *_args):
    global online_at
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    if primary is not None and online_at == 0:
        online_at = now()
        say(client, True, online_at)


client = mqtt.Client(client_id=f"sparkplug-test-host-{port}", clean_session="--persistent" not in sys.argv)
client.reconnect_delay_set(min_delay=1, max_delay=2)
client.on_message = on_message
client.on_subscribe = on_subscribe
client.on_connect = lambda c, *_: c.subscribe("spBv1.0/#", qos=1)
if primary is not None:
    client.will_set(f"spBv1.0/STATE/{primary}", json.dumps({"online": False, "timestamp": now()}), qos=1, retain=True)
client.connect("127.0.0.1", port)
client.loop_forever()
