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

  peer.py client --host URL --request QUEUE --response QUEUE [--stream] [--warmup] [--raw] [--timeout S]
      Build TrustGraph's TextCompletionClient as a flow processor does
      (TextCompletionClientSpec.register) and make one request through it:
      text_completion, or with --stream text_completion_stream (--warmup
      times one text_completion call before it). With --raw,
      make the same request once more through the client's request() and
      keep every response as received. Print one line "result: {json}" with what
      came back (chunks, timings, the exception raised) and exit 0; the
      caller judges it. Chunk texts are "<index> <unix-ns at emission>".

  peer.py triples --host URL --queue QUEUE --subscription NAME
      Subscribe to QUEUE, print "ready", then receive the Triples messages of
      expected_triples() (in any order, matched by their `id` property) and
      check that each decodes to the expected object.

llm and triples print "ok ..." and exit 0 on success; on failure prints both sides' JSON
and exits 1.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
import uuid
from types import SimpleNamespace

from trustgraph.base.async_pulsar_backend import AsyncPulsarBackend
from trustgraph.base.serialization import dataclass_to_dict
from trustgraph.base.text_completion_client import TextCompletionClientSpec
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
# client: TrustGraph's TextCompletionClient against a Go LLM


def exception_info(e):
    if e is None:
        return None
    cls = type(e)
    return {"class": cls.__name__, "module": cls.__module__, "message": str(e),
            "traceback": "".join(traceback.format_exception(e))}


def chunk_summary(received):
    """received: [(receive ns, chunk text)]. Checks the order of the chunk
    indices and measures each chunk's delay from its emission."""
    indices, delays, bad = [], [], []
    for recv_ns, text in received:
        try:
            index, emit_ns = (int(f) for f in text.split())
        except ValueError:
            bad.append(text)
            continue
        indices.append(index)
        delays.append(recv_ns - emit_ns)
    ordered = sorted(delays)

    def pct(p):
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else None

    return {
        "chunks": len(received),
        "in_order": indices == list(range(len(indices))) and not bad,
        "first_index": indices[0] if indices else None,
        "unparsed": bad[:5],
        "first_delay_ns": delays[0] if delays else None,
        "p50_delay_ns": pct(0.5),
        "p99_delay_ns": pct(0.99),
        "max_delay_ns": ordered[-1] if ordered else None,
    }


def response_info(resp):
    err = None if resp.error is None else {"type": resp.error.type, "message": resp.error.message}
    return {"response": resp.response, "error": err, "end_of_stream": resp.end_of_stream,
            "in_token": resp.in_token, "out_token": resp.out_token, "model": resp.model}


async def run_client(args):
    backend = AsyncPulsarBackend(host=args.host)
    # What a flow processor's Flow hands a spec: its backend and id, and
    # the flow's queue names under the spec's names.
    processor = SimpleNamespace(async_backend=backend, id="interop-peer")
    flow = SimpleNamespace(consumer={})
    spec = TextCompletionClientSpec(request_name="text-completion-request",
                                    response_name="text-completion-response")
    client = await spec.register(flow, processor, {"topics": {
        "text-completion-request": args.request, "text-completion-response": args.response}})
    out = {"stream": args.stream}
    try:
        if args.warmup:
            # One request without streaming first, timed: the first reply
            # on a queue includes the replier's producer creation.
            t0 = time.time_ns()
            await client.text_completion("system", "warm-up", timeout=args.timeout)
            out["warmup_ns"] = time.time_ns() - t0
        # 1. The public API: text_completion or text_completion_stream.
        received = []

        async def on_chunk(resp):
            received.append((time.time_ns(), resp.response))

        raised, result = None, None
        t0 = time.time_ns()
        try:
            if args.stream:
                result = await client.text_completion_stream(
                    "system", "prompt", on_chunk, timeout=args.timeout)
            else:
                result = await client.text_completion("system", "prompt", timeout=args.timeout)
        except Exception as e:  # noqa: BLE001 - the caller judges what was raised
            raised = e
        t1 = time.time_ns()
        out["total_ns"] = t1 - t0
        out["first_after_request_ns"] = received[0][0] - t0 if received else None
        out["exception"] = exception_info(raised)
        out["result"] = None if result is None else {
            "text": result.text, "in_token": result.in_token,
            "out_token": result.out_token, "model": result.model}
        if args.stream:
            out.update(chunk_summary(received))

        if not args.raw:
            return 0
        # 2. The same request through request(), keeping every response:
        # what the error response looks like on the wire.
        responses = []

        async def keep(resp):
            responses.append(resp)
            return resp.end_of_stream

        raw_raised = None
        req = TextCompletionRequest(system="system", prompt="prompt", streaming=args.stream)
        try:
            if args.stream:
                await client.request(req, recipient=keep, timeout=args.timeout)
            else:
                responses.append(await client.request(req, timeout=args.timeout))
        except Exception as e:  # noqa: BLE001
            raw_raised = e
        out["raw"] = {
            "exception": exception_info(raw_raised),
            "responses": len(responses),
            "errors_before_last": sum(1 for r in responses[:-1] if r.error is not None),
            "finals_before_last": sum(1 for r in responses[:-1] if r.end_of_stream),
            "last": response_info(responses[-1]) if responses else None,
        }
    finally:
        await client.close()
        await backend.close()
        print("result: " + json.dumps(out), flush=True)
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
    cl = sub.add_parser("client")
    cl.add_argument("--host", required=True)
    cl.add_argument("--request", required=True)
    cl.add_argument("--response", required=True)
    cl.add_argument("--stream", action="store_true")
    cl.add_argument("--warmup", action="store_true", help="make one request without streaming first, and time it")
    cl.add_argument("--raw", action="store_true", help="also make the request through request() and report every response")
    cl.add_argument("--timeout", type=float, default=TIMEOUT,
                    help="seconds to wait for each response (TrustGraph's per-message timeout)")
    tr = sub.add_parser("triples")
    tr.add_argument("--host", required=True)
    tr.add_argument("--queue", required=True)
    tr.add_argument("--subscription", required=True)
    args = parser.parse_args()
    run = {"llm": run_llm, "client": run_client, "triples": run_triples}[args.cmd]
    return asyncio.run(run(args))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulsar C++ client behind the Python one can crash while the
    # interpreter tears down its objects at exit, after every check has
    # passed; leave without that teardown so the exit status is the verdict.
    os._exit(code)
