// A second independent Sparkplug B decoder for the tests: Eclipse Tahu's JavaScript payload
// library (npm `sparkplug-payload`). Reads JSON lines {"topic", "raw"} (the payload in hex, as
// captured by host.py) on stdin and prints, for each, one JSON line with what Tahu decodes:
// {"seq", "metrics": [{"name", "alias", "datatype", "value", "is_null", "historical",
// "timestamp"}]}, or {"error"} when Tahu cannot decode it.
//
// Data by alias carries no datatype and no name (the specification asks for them in births
// only), and Tahu decodes a value by the datatype field of its own metric. So this script does
// what a host built on Tahu does: it remembers each birth's aliases, writes the born datatype
// into the decoded protobuf of a later message, and lets Tahu decode that.
//
// Tahu 1.0.3 predates two rules of Sparkplug 3.0's datatype table, which pysparkplug and the
// gateway follow: UInt32 travels in `int_value` (Tahu looks in `long_value` only, so the
// script moves it there first), and Int8/Int16 at their own width (the table's example: Int16
// -23 is 65513; Tahu gives the unsigned number). Tahu's UInt32 comes back through a signed
// conversion. So the values of those three types are read back at their width here.
//
//     NODE_PATH=DIR/node_modules node tahu.js < captured.jsonl

"use strict";

const readline = require("readline");
const Long = require("long");
const tahu = require("sparkplug-payload").get("spBv1.0");
const proto = require("sparkplug-payload/lib/sparkplugPayloadProto").org.eclipse.tahu.protobuf;

const UINT32 = 7;

// (group/node/device) -> Map(alias -> {name, datatype})
const births = new Map();

function deviceKey(topic) {
  const [, group, , node, device] = topic.split("/");
  return `${group}/${node}/${device ?? ""}`;
}

function plain(v) {
  if (Long.isLong(v)) {
    const n = v.toNumber();
    return Number.isSafeInteger(n) ? n : v.toString();
  }
  return v;
}

function atWidth(datatype, v) {
  if (typeof v !== "number") return v;
  switch (datatype) {
    case "Int8":
      return (v << 24) >> 24;
    case "Int16":
      return (v << 16) >> 16;
    case "UInt32":
      return v >>> 0;
    default:
      return v;
  }
}

function decode(topic, bytes) {
  const kind = topic.split("/")[2];
  const key = deviceKey(topic);
  const pb = proto.Payload.decode(bytes);
  const born = kind.endsWith("BIRTH") ? new Map() : births.get(key) ?? new Map();
  for (const m of pb.metrics) {
    const alias = m.hasOwnProperty("alias") ? plain(m.alias) : undefined;
    if (kind.endsWith("BIRTH")) {
      if (alias !== undefined) born.set(alias, { name: m.name, datatype: m.datatype });
    } else if (!m.hasOwnProperty("datatype") && born.has(alias)) {
      m.datatype = born.get(alias).datatype;
    }
    if (m.datatype === UINT32 && m.hasOwnProperty("intValue")) {
      m.longValue = Long.fromNumber(m.intValue, true);
      delete m.intValue;
    }
  }
  if (kind.endsWith("BIRTH")) births.set(key, born);
  const decoded = tahu.decodePayload(proto.Payload.encode(pb).finish());
  return {
    seq: decoded.seq === undefined ? null : plain(decoded.seq),
    metrics: (decoded.metrics ?? []).map((m) => {
      const alias = m.alias === undefined ? null : plain(m.alias);
      const name = m.name ?? born.get(alias)?.name ?? null;
      return {
        name,
        alias,
        datatype: m.type ? m.type.toUpperCase() : null,
        value: m.value === null ? null : atWidth(m.type, plain(m.value)),
        is_null: m.value === null,
        historical: m.isHistorical === true,
        timestamp: m.timestamp === undefined ? null : plain(m.timestamp),
      };
    }),
  };
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let out;
  try {
    const { topic, raw } = JSON.parse(line);
    out = decode(topic, Buffer.from(raw, "hex"));
  } catch (e) {
    out = { error: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
});
