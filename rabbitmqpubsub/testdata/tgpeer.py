#!/usr/bin/env python3
"""TrustGraph's side of the RabbitMQ interop test.

Uses only TrustGraph 2.11.1's own RabbitMQ backend
(trustgraph.base.async_rabbitmq_backend, aio-pika): its exchange and queue
declarations, its producer and its consumer. Run it with the interpreter
scripts/python-env.sh prints.

  tgpeer.py --host H --port P --username U --password-env VAR
            --flow TOPIC --request TOPIC --response TOPIC --count N

Creates a consumer of the response topic, prints "ready", sends N
TextCompletionRequest messages to the flow topic and N to the request
topic, each with an `id` property, then waits for one TextCompletionResponse
per request (matched by `id`) whose response echoes the prompt. Prints
"ok ..." and exits 0, or prints what failed and exits 1.
"""

import argparse
import asyncio
import os
import sys
import uuid

from trustgraph.base.async_rabbitmq_backend import AsyncRabbitMQBackend
from trustgraph.schema import TextCompletionRequest, TextCompletionResponse

TIMEOUT = 30


async def run(args):
    backend = AsyncRabbitMQBackend(
        host=args.host, port=args.port, username=args.username,
        password=os.environ[args.password_env], vhost="/",
    )
    consumer = await backend.create_consumer(
        topic=args.response, subscription=f"rr-{uuid.uuid4().hex[:12]}",
        schema=TextCompletionResponse,
    )
    print("ready", flush=True)
    flow = await backend.create_producer(topic=args.flow, schema=TextCompletionRequest)
    request = await backend.create_producer(topic=args.request, schema=TextCompletionRequest)

    for i in range(args.count):
        await flow.send(TextCompletionRequest(system="flow", prompt=f"flow {i} ✓"),
                        properties={"id": f"flow-{i}"})
    sent = {}
    for i in range(args.count):
        rid = str(uuid.uuid4())
        sent[rid] = f"request {i} naïve ✓"
        await request.send(TextCompletionRequest(system="rr", prompt=sent[rid]),
                           properties={"id": rid})

    failures = 0
    pending = set(sent)
    while pending:
        try:
            msg = await asyncio.wait_for(consumer.receive(), TIMEOUT)
        except asyncio.TimeoutError:
            print(f"FAIL {len(pending)} responses missing after {TIMEOUT}s", flush=True)
            failures += 1
            break
        await consumer.acknowledge(msg)
        props = msg.properties()
        rid = props.get("id")
        if isinstance(rid, bytes):
            print(f"FAIL id property arrived as bytes {rid!r}", flush=True)
            failures += 1
            rid = rid.decode()
        if rid not in pending:
            print(f"FAIL response with unknown id {rid!r}: {props}", flush=True)
            failures += 1
            continue
        got = msg.value()
        if not isinstance(got, TextCompletionResponse) or got.response != sent[rid] or not got.end_of_stream:
            print(f"FAIL response {rid}: {got!r}", flush=True)
            failures += 1
        pending.discard(rid)

    await consumer.close()
    await flow.close()
    await request.close()
    await backend.close()
    if failures:
        return 1
    print(f"ok {args.count} flow and {args.count} requests sent, {len(sent)} responses received", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--username", required=True)
    ap.add_argument("--password-env", required=True)
    ap.add_argument("--flow", required=True)
    ap.add_argument("--request", required=True)
    ap.add_argument("--response", required=True)
    ap.add_argument("--count", type=int, default=20)
    sys.exit(asyncio.run(run(ap.parse_args())))


if __name__ == "__main__":
    main()
