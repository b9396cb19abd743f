#!/usr/bin/env python3
"""TrustGraph's text completion client, for switchyard's flow interop test.

The client is trustgraph-base 2.11.1's own: TextCompletionClientSpec
registered as a flow processor's Flow registers it (a RequestResponseClient
on the flow's text-completion request and response queues, wrapped with
TextCompletionClient's methods). Each command prints one line
"result: {json}" and exits 0; the caller judges what came back.

  flow_peer.py ask --host URL --request QUEUE --response QUEUE
               --system S --prompt P [--stream] [--timeout S]
      One text_completion (or with --stream text_completion_stream) call:
      the result's text, in_token, out_token and model, the chunks of a
      stream, or the exception raised (a timeout on a queue nobody serves).

  flow_peer.py burst --host URL --request QUEUE --response QUEUE
               --count N [--concurrency C] [--prefix P] [--timeout S] [--settle S]
      N text_completion calls with prompts "<P><i>", at most C in flight
      (default N: all at once; 1: one after the other), while a consumer of
      its own on the response queue counts every response by its id
      property (so a request answered twice shows). After the calls it
      listens --settle seconds more for late duplicates. The client's
      producer is TrustGraph's, so requests sent while others wait for
      their batch to go out share one Pulsar entry.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from types import SimpleNamespace

from trustgraph.base.pubsub import get_async_pubsub
from trustgraph.base.text_completion_client import TextCompletionClientSpec
from trustgraph.schema import TextCompletionResponse

sys.dont_write_bytecode = True


async def flow_client(backend, request, response):
    """The client a flow processor's Flow gets for a TextCompletionClientSpec
    whose queues are request and response."""
    processor = SimpleNamespace(async_backend=backend, id="flow-interop-peer")
    flow = SimpleNamespace(consumer={})
    spec = TextCompletionClientSpec(request_name="text-completion-request",
                                    response_name="text-completion-response")
    return await spec.register(flow, processor, {"topics": {
        "text-completion-request": request, "text-completion-response": response}})


def exception_info(e):
    if e is None:
        return None
    return {"class": type(e).__name__, "module": type(e).__module__, "message": str(e)}


def result_info(r):
    if r is None:
        return None
    return {"text": r.text, "in_token": r.in_token, "out_token": r.out_token, "model": r.model}


def chunk_info(resp):
    return {"response": resp.response, "in_token": resp.in_token, "out_token": resp.out_token,
            "model": resp.model, "end_of_stream": resp.end_of_stream,
            "error": None if resp.error is None else resp.error.type}


async def run_ask(args, backend):
    client = await flow_client(backend, args.request, args.response)
    out = {"stream": args.stream}
    chunks = []

    async def on_chunk(resp):
        chunks.append(chunk_info(resp))

    raised, result = None, None
    t0 = time.monotonic()
    try:
        if args.stream:
            result = await client.text_completion_stream(args.system, args.prompt, on_chunk, timeout=args.timeout)
        else:
            result = await client.text_completion(args.system, args.prompt, timeout=args.timeout)
    except Exception as e:  # noqa: BLE001 - the caller judges what was raised
        raised = e
    out["seconds"] = round(time.monotonic() - t0, 3)
    out["exception"] = exception_info(raised)
    out["result"] = result_info(result)
    if args.stream:
        out["chunks"] = chunks
    await client.close()
    return out


async def run_burst(args, backend):
    counts = Counter()
    watcher = await backend.create_consumer(
        topic=args.response, subscription=f"flow-peer-count-{uuid.uuid4().hex[:12]}",
        schema=TextCompletionResponse)

    async def count():
        while True:
            msg = await watcher.receive()
            counts[msg.properties().get("id")] += 1
            await watcher.acknowledge(msg)

    counting = asyncio.create_task(count())
    client = await flow_client(backend, args.request, args.response)

    slots = asyncio.Semaphore(args.concurrency or args.count)

    async def one(i):
        prompt = f"{args.prefix}{i}"
        try:
            async with slots:
                r = await client.text_completion("", prompt, timeout=args.timeout)
            return {"prompt": prompt, "result": result_info(r), "exception": None}
        except Exception as e:  # noqa: BLE001
            return {"prompt": prompt, "result": None, "exception": exception_info(e)}

    t0 = time.monotonic()
    answers = await asyncio.gather(*(one(i) for i in range(args.count)))
    seconds = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    counting.cancel()
    await client.close()
    await watcher.close()
    return {
        "seconds": round(seconds, 3),
        "answers": answers,
        "responses_seen": sum(counts.values()),
        "ids_seen": len(counts),
        "ids_seen_more_than_once": {k: v for k, v in counts.items() if v != 1},
    }


async def run(args):
    backend = get_async_pubsub(pubsub_backend="pulsar", pulsar_host=args.host)
    try:
        out = await {"ask": run_ask, "burst": run_burst}[args.cmd](args, backend)
    finally:
        await backend.close()
    print("result: " + json.dumps(out), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    ask = sub.add_parser("ask")
    burst = sub.add_parser("burst")
    for p in (ask, burst):
        p.add_argument("--host", required=True)
        p.add_argument("--request", required=True)
        p.add_argument("--response", required=True)
        p.add_argument("--timeout", type=float, default=30,
                       help="seconds to wait for each response (TrustGraph's per-message timeout)")
    ask.add_argument("--system", default="")
    ask.add_argument("--prompt", required=True)
    ask.add_argument("--stream", action="store_true")
    burst.add_argument("--count", type=int, required=True)
    burst.add_argument("--concurrency", type=int, default=0, help="requests in flight at most (default: all)")
    burst.add_argument("--prefix", default="burst-", help="prompt prefix")
    burst.add_argument("--settle", type=float, default=2.0,
                       help="seconds to keep counting responses after the last answer")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulsar C++ client can crash while the interpreter tears down its
    # objects at exit; leave without that teardown.
    os._exit(code)
