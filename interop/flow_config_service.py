#!/usr/bin/env python3
"""A small TrustGraph configuration service for switchyard's flow interop test.

Built only from trustgraph-base 2.11.1: its schema (ConfigRequest,
ConfigResponse, ConfigPush, ConfigValue, Error), its queue names
(request:tg:config, response:tg:config, notify:tg:config) and its pub/sub
backend (get_async_pubsub, the AsyncPulsarBackend TrustGraph's own services
run on). It answers flow processors the way TrustGraph 2.11.1's
configuration service does:

  getkeys-all-ws  type T       -> values [{type T, key, value "", workspace}]
  getvalues       workspace W, type T -> values [{type T, key, value, workspace ""}]
  getvalues-all-ws type T      -> values [{type T, key, value, workspace}]
  list            workspace W, type T -> directory [key]
  anything else, or a workspace-scoped operation without a workspace
                               -> error {type "bad-request"}

Every response carries the current version and the request's `id`
property. Entries are changed through a control channel on standard input,
one JSON object a line:

  {"op": "put", "workspace": W, "type": T, "key": K, "value": V}
  {"op": "delete", "workspace": W, "type": T, "key": K}

Each change raises the version by one and publishes ConfigPush{version,
changes={T: [W]}} on notify:tg:config (a poke: no values), then prints
"applied {json}" with the version. At start the service seeds
__workspaces__/workspace/default, publishes an empty poke (changes={}) as
TrustGraph's service does at start, and prints "ready". Each request served
is printed as "served {json}".

  flow_config_service.py --host pulsar://127.0.0.1:6650 [--subscription config-svc]
"""

import argparse
import asyncio
import json
import os
import sys
import traceback

from trustgraph.base.pubsub import get_async_pubsub
from trustgraph.schema import (
    ConfigPush, ConfigRequest, ConfigResponse, ConfigValue, Error,
    config_push_queue, config_request_queue, config_response_queue,
)

sys.dont_write_bytecode = True

# Operations that need a workspace in the body (the rest span workspaces).
WORKSPACE_SCOPED = {"get", "list", "getvalues", "put", "delete", "config"}


def say(kind, obj):
    print(f"{kind} {json.dumps(obj, sort_keys=True)}", flush=True)


class Store:
    """Entries by workspace, type and key, and the version."""

    def __init__(self):
        self.data = {}  # workspace -> type -> key -> value
        self.version = 0

    def put(self, ws, typ, key, value):
        self.data.setdefault(ws, {}).setdefault(typ, {})[key] = value
        self.version += 1

    def delete(self, ws, typ, key):
        entries = self.data.get(ws, {}).get(typ, {})
        entries.pop(key, None)
        self.version += 1

    def entries(self, typ):
        """(workspace, key, value) of every entry of typ, sorted."""
        out = []
        for ws in sorted(self.data):
            for key, value in sorted(self.data[ws].get(typ, {}).items()):
                out.append((ws, key, value))
        return out

    def answer(self, req):
        op = req.operation
        if op in WORKSPACE_SCOPED and not req.workspace:
            return ConfigResponse(version=self.version, error=Error(
                type="bad-request", message=f"operation {op!r} needs a workspace"))
        if op == "getkeys-all-ws":
            return ConfigResponse(version=self.version, values=[
                ConfigValue(type=req.type, key=k, value="", workspace=ws)
                for ws, k, _ in self.entries(req.type)])
        if op == "getvalues-all-ws":
            return ConfigResponse(version=self.version, values=[
                ConfigValue(type=req.type, key=k, value=v, workspace=ws)
                for ws, k, v in self.entries(req.type)])
        if op == "getvalues":
            entries = self.data.get(req.workspace, {}).get(req.type, {})
            return ConfigResponse(version=self.version, values=[
                ConfigValue(type=req.type, key=k, value=v, workspace="")
                for k, v in sorted(entries.items())])
        if op == "list":
            entries = self.data.get(req.workspace, {}).get(req.type, {})
            return ConfigResponse(version=self.version, directory=sorted(entries))
        return ConfigResponse(version=self.version, error=Error(
            type="bad-request", message=f"operation {op!r} is not served here"))


async def serve(args):
    backend = get_async_pubsub(pubsub_backend="pulsar", pulsar_host=args.host)
    store = Store()
    store.data["__workspaces__"] = {"workspace": {"default": "{}"}}

    consumer = await backend.create_consumer(
        topic=config_request_queue, subscription=args.subscription,
        schema=ConfigRequest)
    responses = await backend.create_producer(topic=config_response_queue, schema=ConfigResponse)
    pushes = await backend.create_producer(topic=config_push_queue, schema=ConfigPush)

    lock = asyncio.Lock()  # one change or answer at a time: versions stay ordered

    async def poke(changes):
        await pushes.send(ConfigPush(version=store.version, changes=changes))

    async def requests():
        while True:
            msg = await consumer.receive()
            try:
                req = msg.value()
                rid = msg.properties().get("id")
                async with lock:
                    resp = store.answer(req)
                    await responses.send(resp, properties={"id": rid} if rid is not None else {})
                say("served", {
                    "id": rid, "operation": req.operation, "workspace": req.workspace,
                    "type": req.type, "version": resp.version,
                    "keys": [v.key for v in resp.values] + list(resp.directory),
                    "error": None if resp.error is None else resp.error.type,
                })
            except Exception:  # noqa: BLE001 - keep serving; the test sees the trace
                traceback.print_exc()
            await consumer.acknowledge(msg)

    async def control():
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
                async with lock:
                    if cmd["op"] == "put":
                        store.put(cmd["workspace"], cmd["type"], cmd["key"], cmd["value"])
                    elif cmd["op"] == "delete":
                        store.delete(cmd["workspace"], cmd["type"], cmd["key"])
                    else:
                        raise ValueError(f"unknown op {cmd['op']!r}")
                    changes = {cmd["type"]: [cmd["workspace"]]}
                    await poke(changes)
                say("applied", {"op": cmd["op"], "key": cmd["key"], "version": store.version,
                                "changes": changes})
            except Exception as e:  # noqa: BLE001 - report and go on
                say("rejected", {"line": line, "error": str(e)})

    await poke({})
    print("ready", flush=True)
    served = asyncio.create_task(requests())
    try:
        await control()  # ends when standard input closes
    finally:
        served.cancel()
        await consumer.close()
        await responses.close()
        await pushes.close()
        await backend.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", required=True, help="Pulsar service URL")
    parser.add_argument("--subscription", default="config-svc",
                        help="subscription on request:tg:config (TrustGraph's service uses its id, config-svc)")
    args = parser.parse_args()
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulsar C++ client can crash while the interpreter tears down its
    # objects at exit; leave without that teardown.
    os._exit(code)
