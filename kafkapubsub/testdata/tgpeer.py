#!/usr/bin/env python3
"""TrustGraph's side of the Kafka interop test.

Uses only TrustGraph 2.11.1's own Kafka backend
(trustgraph.base.async_kafka_backend through get_async_pubsub, aiokafka):
its topic mapping, its producers and its per-client response consumer. Run
it with the interpreter scripts/python-env.sh prints.

  tgpeer.py --bootstrap HOST:PORT --flow QUEUE --request QUEUE
            --response QUEUE --count N

Creates a consumer of the response queue the way TrustGraph's
request/response client does (subscription rr-<12 hex>, which the backend
turns into the group rr-<12 hex>-<uuid> reading from the earliest offset),
prints "subscription rr-..." and "ready", sends N Triples messages to the
flow queue (property id flow-<i>) and N TextCompletionRequest messages to
the request queue (property id a uuid4), then waits for exactly one
TextCompletionResponse per request, matched by id, whose response echoes the
prompt, and for a quiet period in which nothing else may arrive. Prints
"timing ..." and "ok ...", and exits 0, or prints what failed and exits 1.
"""

import argparse
import asyncio
import sys
import time
import uuid

from trustgraph.base.pubsub import get_async_pubsub
from trustgraph.schema import (
    IRI, LITERAL, TRIPLE,
    Metadata, Term, TextCompletionRequest, TextCompletionResponse, Triple,
    Triples,
)

RECEIVE_TIMEOUT = 30   # seconds allowed between two responses
QUIET = 2              # seconds in which no further response may arrive

LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SOURCE = "http://example.org/source"
XSD_INT = "http://www.w3.org/2001/XMLSchema#integer"


def triples(i):
    """The Triples message number i; the Go side checks every field."""
    entity = Term(type=IRI, iri=f"http://example.org/e{i}")
    label = Triple(
        s=entity, p=Term(type=IRI, iri=LABEL),
        o=Term(type=LITERAL, value=f"entité {i} ✓", language="fr"),
    )
    quoted = Triple(
        s=Term(type=TRIPLE, triple=label),
        p=Term(type=IRI, iri=SOURCE),
        o=Term(type=LITERAL, value=str(i), datatype=XSD_INT),
        g="urn:graph:interop",
    )
    return Triples(
        metadata=Metadata(id=f"doc-{i}", root="root", collection="interop"),
        triples=[label, quoted],
    )


async def run(args):
    backend = get_async_pubsub(
        pubsub_backend="kafka", kafka_bootstrap_servers=args.bootstrap,
    )
    subscription = f"rr-{uuid.uuid4().hex[:12]}"
    consumer = await backend.create_consumer(
        topic=args.response, subscription=subscription,
        schema=TextCompletionResponse, initial_position="latest",
    )
    print(f"subscription {subscription}", flush=True)
    print("ready", flush=True)
    flow = await backend.create_producer(topic=args.flow, schema=Triples)
    request = await backend.create_producer(
        topic=args.request, schema=TextCompletionRequest,
    )

    t0 = time.monotonic()
    for i in range(args.count):
        await flow.send(triples(i), properties={"id": f"flow-{i}"})
    t_flow = time.monotonic()
    sent = {}
    for i in range(args.count):
        rid = str(uuid.uuid4())
        sent[rid] = f"request {i} naïve ✓"
        await request.send(
            TextCompletionRequest(system="rr", prompt=sent[rid]),
            properties={"id": rid},
        )
    t_req = time.monotonic()

    failures = 0
    received = 0
    pending = set(sent)
    seen = set()
    t_last = t_req
    while True:
        timeout = RECEIVE_TIMEOUT if pending else QUIET
        try:
            msg = await asyncio.wait_for(consumer.receive(), timeout)
        except asyncio.TimeoutError:
            if pending:
                print(f"FAIL {len(pending)} of {len(sent)} responses missing "
                      f"after {RECEIVE_TIMEOUT}s without one", flush=True)
                failures += 1
            break
        await consumer.acknowledge(msg)
        received += 1
        props = msg.properties()
        rid = props.get("id")
        if not isinstance(rid, str):
            print(f"FAIL id property {rid!r} is not a str: {props}", flush=True)
            failures += 1
            continue
        if rid in seen:
            print(f"FAIL duplicate response {rid}", flush=True)
            failures += 1
            continue
        if rid not in pending:
            print(f"FAIL response with unknown id {rid!r}: {props}", flush=True)
            failures += 1
            continue
        got = msg.value()
        if (not isinstance(got, TextCompletionResponse)
                or got.response != sent[rid] or not got.end_of_stream
                or got.model != "go-echo" or got.error is not None):
            print(f"FAIL response {rid}: {got!r}", flush=True)
            failures += 1
        pending.discard(rid)
        seen.add(rid)
        t_last = time.monotonic()

    await consumer.close()
    await flow.close()
    await request.close()
    await backend.close()
    print(f"timing flow_send={t_flow - t0:.3f}s "
          f"request_send={t_req - t_flow:.3f}s "
          f"last_response_after_last_request={t_last - t_req:.3f}s", flush=True)
    if failures:
        return 1
    print(f"ok {args.count} flow and {args.count} requests sent, "
          f"{len(seen)} responses received ({received} records)", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--flow", required=True)
    ap.add_argument("--request", required=True)
    ap.add_argument("--response", required=True)
    ap.add_argument("--count", type=int, default=20)
    sys.exit(asyncio.run(run(ap.parse_args())))


if __name__ == "__main__":
    main()
