#!/usr/bin/env python3
"""Python's side of the codec's JSON edge cases, for schema's Go tests.

Reads one JSON request on stdin and writes one JSON answer on stdout. Payload
bytes travel base64-encoded so that bytes which are not UTF-8 survive.

  {"op": "load", "payload": B64}
      Read the payload the way TrustGraph's Pulsar consumer does
      (payload.decode("utf-8"), then json.loads) and answer
      {"ok": true, "value": TYPED, "dumps": json.dumps(value)} or
      {"ok": false, "error": "..."}; also "loads_bytes": what json.loads
      makes of the raw bytes on its own ({"ok":..., "value"/"error"}).
  {"op": "same", "a": B64, "b": B64}
      Load both as "load" does and answer {"same": bool, "a": TYPED, "b": TYPED}:
      whether Python gets equal values of the same types (an int is not a
      float, True is not 1).
  {"op": "fromisoformat", "text": STR}
      datetime.fromisoformat(text) as {"ok": true, "epoch_us": INT,
      "utcoffset_s": INT or null, "isoformat": STR}, or {"ok": false, ...}.
  {"op": "isoformat", "epoch_us": INT, "utcoffset_s": INT}
      The isoformat() of that aware datetime, as a JSON document
      json.dumps({"when": text}) (base64, in "payload").

TYPED spells a value with its Python type: {"int": "123"}, {"float": "1.0"}
(repr), {"str": [code points]}, {"bool": true}, null, lists and
{"dict": [[key code points, TYPED], ...]} sorted by key (JSON objects are
unordered; Go writes keys sorted, Python in insertion order).
"""

import base64
import datetime
import json
import sys


def typed(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, str):
        return {"str": [ord(c) for c in v]}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, dict):
        return {"dict": sorted([[ord(c) for c in k], typed(x)] for k, x in v.items())}
    raise TypeError(f"unexpected {type(v).__name__}")


def tg_load(payload):
    """What TrustGraph's PulsarMessage.value does before building the object."""
    return json.loads(payload.decode("utf-8"))


def attempt(fn, payload):
    try:
        v = fn(payload)
    except Exception as e:  # noqa: BLE001 - report any failure to the Go side
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "value": typed(v), "dumps": json.dumps(v)}


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "load":
        payload = base64.b64decode(req["payload"])
        out = attempt(tg_load, payload)
        out["loads_bytes"] = attempt(json.loads, payload)
    elif op == "same":
        a = attempt(tg_load, base64.b64decode(req["a"]))
        b = attempt(tg_load, base64.b64decode(req["b"]))
        out = {"a": a, "b": b, "same": a["ok"] and b["ok"] and a["value"] == b["value"]}
    elif op == "fromisoformat":
        try:
            dt = datetime.datetime.fromisoformat(req["text"])
        except ValueError as e:
            out = {"ok": False, "error": str(e)}
        else:
            off = dt.utcoffset()
            epoch = dt.timestamp() if off is not None else None
            out = {
                "ok": True,
                "epoch_us": None if epoch is None else
                (dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1),
                "utcoffset_s": None if off is None else int(off.total_seconds()),
                "isoformat": dt.isoformat(),
            }
    elif op == "isoformat":
        tz = datetime.timezone(datetime.timedelta(seconds=req["utcoffset_s"]))
        dt = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + \
            datetime.timedelta(microseconds=req["epoch_us"])
        text = dt.astimezone(tz).isoformat()
        out = {"text": text, "payload": base64.b64encode(json.dumps({"when": text}).encode("utf-8")).decode()}
    else:
        print(f"unknown op {op}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
