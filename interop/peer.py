#!/usr/bin/env python3
"""The TrustGraph side of switchyard's live interop test.

Talks to a real Pulsar broker only through TrustGraph's own code: its
AsyncPulsarBackend (queue name mapping, producers, consumers), the producer's
serializer and the consumer's deserializer. Run it with the interpreter
scripts/python-env.sh prints.

  peer.py llm --host URL --request QUEUE --response QUEUE --count N --model NAME
      Subscribe to the response queue, send N TextCompletionRequest messages
      (plus one streaming and one list-models request), each with an `id`
      property, and check every reply against what an echo LLM must answer.

  peer.py triples --host URL --queue QUEUE --subscription NAME
      Subscribe to QUEUE, print "ready", then receive the Triples messages of
      expected_triples() (in any order, matched by their `id` property) and
      check that each decodes to the expected object.

Prints "ok ..." and exits 0 on success; on failure prints both sides' JSON
and exits 1.
"""

import argparse
import asyncio
import json
import os
import sys
import uuid

from trustgraph.base.async_pulsar_backend import AsyncPulsarBackend
from trustgraph.base.serialization import dataclass_to_dict
from trustgraph.schema import (
    BLANK, IRI, LITERAL, TRIPLE, Metadata, Term, TextCompletionRequest,
    TextCompletionResponse, Triple, Triples,
)

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from golden import deq  # noqa: E402  (NaN-aware deep equality)

TEXT = "naïve café ✓ 😀"
TIMEOUT = 30


def wire(obj):
    """The JSON text TrustGraph's producer writes for obj."""
    return json.dumps(dataclass_to_dict(obj))


def raw(msg):
    """The payload bytes of a received message, as text."""
    return msg._msg.data().decode("utf-8", errors="replace")


class Failures:
    def __init__(self):
        self.count = 0

    def add(self, what, sent=None, received=None, expected=None):
        self.count += 1
        print(f"FAIL {what}", flush=True)
        if sent is not None:
            print(f"  sent (python):     {sent}", flush=True)
        if expected is not None:
            print(f"  expected (python): {expected}", flush=True)
        if received is not None:
            print(f"  received (go):     {received}", flush=True)


# ---------------------------------------------------------------------------
# llm: Python requests, Go echo-llm replies


def expected_reply(req, model):
    """What echo-llm answers to a non-streaming completion request."""
    return TextCompletionResponse(
        response=req.prompt,
        in_token=len(req.system.split()) + len(req.prompt.split()),
        out_token=len(req.prompt.split()),
        model=model,
        end_of_stream=True,
    )


async def run_llm(args):
    backend = AsyncPulsarBackend(host=args.host)
    failures = Failures()
    consumer = await backend.create_consumer(
        topic=args.response, subscription=f"peer-{uuid.uuid4().hex[:12]}",
        schema=TextCompletionResponse,
    )
    producer = await backend.create_producer(topic=args.request, schema=TextCompletionRequest)
    try:
        sent = {}
        for i in range(args.count):
            req = TextCompletionRequest(system=f"system {i}", prompt=f"prompt {i}: {TEXT} \"quoted\"")
            rid = str(uuid.uuid4())
            sent[rid] = ("completion", req)
            await producer.send(req, properties={"id": rid})
        stream_req = TextCompletionRequest(prompt=f"stream these words {TEXT}", streaming=True)
        stream_id = str(uuid.uuid4())
        sent[stream_id] = ("stream", stream_req)
        await producer.send(stream_req, properties={"id": stream_id})
        models_req = TextCompletionRequest(operation="list-models")
        models_id = str(uuid.uuid4())
        sent[models_id] = ("list-models", models_req)
        await producer.send(models_req, properties={"id": models_id})

        pending = set(sent)
        stream_parts = []
        while pending:
            try:
                msg = await asyncio.wait_for(consumer.receive(), TIMEOUT)
            except asyncio.TimeoutError:
                for rid in sorted(pending):
                    kind, req = sent[rid]
                    failures.add(f"no reply with id {rid} ({kind}) within {TIMEOUT}s", sent=wire(req))
                break
            await consumer.acknowledge(msg)
            rid = msg.properties().get("id")
            if rid not in sent:
                failures.add(f"reply with unknown id property {rid!r}", received=raw(msg))
                continue
            kind, req = sent[rid]
            try:
                got = msg.value()
            except Exception as e:  # noqa: BLE001 - report any decoder failure
                failures.add(f"{kind} {rid}: TrustGraph cannot decode the reply: {e}",
                             sent=wire(req), received=raw(msg))
                pending.discard(rid)
                continue
            if not isinstance(got, TextCompletionResponse):
                failures.add(f"{kind} {rid}: decoded into {type(got).__name__}", received=raw(msg))
            if kind == "completion":
                want = expected_reply(req, args.model)
                if not deq(got, want, TextCompletionResponse):
                    failures.add(f"completion {rid}: reply differs", sent=wire(req),
                                 expected=wire(want), received=raw(msg))
                pending.discard(rid)
            elif kind == "stream":
                stream_parts.append((got, raw(msg)))
                if got.error is not None or got.model != args.model:
                    failures.add(f"stream {rid}: bad chunk", sent=wire(req), received=raw(msg))
                if got.end_of_stream:
                    pending.discard(rid)
                    text = "".join(p.response for p, _ in stream_parts)
                    if text != req.prompt or len(stream_parts) < 2:
                        failures.add(f"stream {rid}: {len(stream_parts)} chunks make {text!r}",
                                     sent=wire(req), received=" | ".join(r for _, r in stream_parts))
                    last = stream_parts[-1][0]
                    if last.in_token != len(req.prompt.split()) or last.out_token != len(req.prompt.split()):
                        failures.add(f"stream {rid}: token counts on the last chunk",
                                     received=stream_parts[-1][1])
                elif got.in_token is not None:
                    failures.add(f"stream {rid}: token counts before the last chunk", received=raw(msg))
            else:
                ok = (got.error is None and got.end_of_stream and len(got.models) == 1
                      and got.models[0].id == args.model and got.models[0].name == args.model
                      and got.models[0].input_modalities == [])
                if not ok:
                    failures.add(f"list-models {rid}: reply differs", sent=wire(req), received=raw(msg))
                pending.discard(rid)
    finally:
        await producer.close()
        await consumer.close()
        await backend.close()
    if failures.count:
        print(f"{failures.count} failures", flush=True)
        return 1
    print(f"ok: {len(sent)} requests answered, every reply decoded by TrustGraph and matched by id", flush=True)
    return 0


# ---------------------------------------------------------------------------
# triples: Go publishes, Python consumes


def expected_triples():
    """The Triples the Go side publishes, keyed by their id property. The Go
    test builds the same values independently."""
    iri = lambda v: Term(type=IRI, iri=v)  # noqa: E731
    alice, knows, bob = iri("http://example.org/alice"), iri("http://xmlns.com/foaf/0.1/knows"), iri("http://example.org/bob")
    full = Triples(
        metadata=Metadata(id="doc-1", root="root-1", collection="default"),
        triples=[
            Triple(s=alice, p=knows, o=bob),
            Triple(s=alice, p=iri("http://www.w3.org/2000/01/rdf-schema#label"),
                   o=Term(type=LITERAL, value=TEXT, language="fr")),
            Triple(s=Term(type=BLANK, id="b0"), p=iri("http://example.org/age"),
                   o=Term(type=LITERAL, value="42", datatype="http://www.w3.org/2001/XMLSchema#integer"),
                   g="urn:graph:source"),
            Triple(s=Term(type=TRIPLE, triple=Triple(s=alice, p=knows, o=bob)),
                   p=iri("http://example.org/certainty"), o=Term(type=LITERAL, value="0.9")),
        ],
    )
    return {
        "triples-full": full,
        "triples-empty": Triples(),
        "triples-text": Triples(
            metadata=Metadata(id=TEXT),
            triples=[Triple(s=alice, p=iri("http://example.org/note"),
                            o=Term(type=LITERAL, value='quote " backslash \\ newline \n tab \t ß 中文 😀'))],
        ),
    }


async def run_triples(args):
    backend = AsyncPulsarBackend(host=args.host)
    failures = Failures()
    expected = expected_triples()
    consumer = await backend.create_consumer(
        topic=args.queue, subscription=args.subscription, schema=Triples,
        initial_position="earliest",
    )
    print("ready", flush=True)
    try:
        pending = set(expected)
        while pending:
            try:
                msg = await asyncio.wait_for(consumer.receive(), TIMEOUT)
            except asyncio.TimeoutError:
                for rid in sorted(pending):
                    failures.add(f"no Triples with id {rid} within {TIMEOUT}s", expected=wire(expected[rid]))
                break
            await consumer.acknowledge(msg)
            rid = msg.properties().get("id")
            if rid not in expected:
                failures.add(f"message with unexpected id property {rid!r}", received=raw(msg))
                continue
            pending.discard(rid)
            try:
                got = msg.value()
            except Exception as e:  # noqa: BLE001 - report any decoder failure
                failures.add(f"{rid}: TrustGraph cannot decode it: {e}", expected=wire(expected[rid]),
                             received=raw(msg))
                continue
            if not deq(got, expected[rid], Triples):
                failures.add(f"{rid}: decodes to a different object", expected=wire(expected[rid]),
                             received=raw(msg))
    finally:
        await consumer.close()
        await backend.close()
    if failures.count:
        print(f"{failures.count} failures", flush=True)
        return 1
    print(f"ok: {len(expected)} Triples messages from Go decoded by TrustGraph as expected", flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    llm = sub.add_parser("llm")
    llm.add_argument("--host", required=True)
    llm.add_argument("--request", required=True)
    llm.add_argument("--response", required=True)
    llm.add_argument("--count", type=int, default=20)
    llm.add_argument("--model", required=True)
    tr = sub.add_parser("triples")
    tr.add_argument("--host", required=True)
    tr.add_argument("--queue", required=True)
    tr.add_argument("--subscription", required=True)
    args = parser.parse_args()
    run = run_llm if args.cmd == "llm" else run_triples
    return asyncio.run(run(args))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulsar C++ client behind the Python one can crash while the
    # interpreter tears down its objects at exit, after every check has
    # passed; leave without that teardown so the exit status is the verdict.
    os._exit(code)
