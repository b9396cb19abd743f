"""Minimal TrustGraph text-completion processor for the switchyard benchmark.

It does the work every benchmark processor does (decode a
TextCompletionRequest, answer with the prompt, publish the
TextCompletionResponse with the request's "id" property) on
trustgraph-base's own runtime: AsyncPulsarBackend for the broker,
ReceiverPool for consuming (its worker pool, acking after the handler) and
SenderPool for producing, the way trustgraph.base.AsyncProcessor wires them
for a real processor, metrics included.

    python tg_processor.py --pulsar-host pulsar://127.0.0.1:6650 \
        --input persistent://public/default/req --output persistent://public/default/resp \
        --subscription bench --concurrency 8

It prints "ready" on stdout once it consumes, and stops on SIGTERM or SIGINT.
A token for the broker is read from the PULSAR_API_KEY environment variable.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys

from trustgraph.base.async_pulsar_backend import AsyncPulsarBackend
from trustgraph.base.receiver_pool import ReceiverPool
from trustgraph.base.sender_pool import SenderPool
from trustgraph.schema import TextCompletionRequest, TextCompletionResponse

MODEL = "echo"


async def run(args):
    backend = AsyncPulsarBackend(
        host=args.pulsar_host,
        api_key=os.environ.get("PULSAR_API_KEY") or None,
    )
    receivers = ReceiverPool(
        backend=backend, concurrency=args.concurrency, processor_id=args.subscription,
    )
    senders = SenderPool(backend=backend, processor_id=args.subscription)
    await receivers.start()
    await senders.start()

    producer = await senders.add_producer(topic=args.output, schema=TextCompletionResponse)

    async def on_request(msg):
        request = msg.value()
        in_token = (len(request.system or "") + len(request.prompt or "")) // 4
        out_token = len(request.prompt or "") // 4
        response = TextCompletionResponse(
            error=None,
            response=request.prompt,
            in_token=in_token,
            out_token=out_token,
            model=MODEL,
            end_of_stream=True,
            models=[],
        )
        await producer.send(response, properties={"id": msg.properties().get("id", "")})

    await receivers.add_consumer(
        topic=args.input,
        subscription=args.subscription,
        schema=TextCompletionRequest,
        handler=on_request,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    print("ready", flush=True)
    await stop.wait()

    await receivers.stop(drain_timeout=2.0)
    await senders.stop(drain_timeout=2.0)
    await backend.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulsar-host", default="pulsar://localhost:6650")
    parser.add_argument("--input", required=True, help="request topic (Pulsar URI or class:topicspace:topic)")
    parser.add_argument("--output", required=True, help="response topic")
    parser.add_argument("--subscription", default="tg-bench")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(run(args))
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulsar client's native threads may abort the interpreter's own
    # shutdown ("terminate called without an active exception"); everything
    # is closed by now, so leave without it.
    os._exit(0)


if __name__ == "__main__":
    main()
