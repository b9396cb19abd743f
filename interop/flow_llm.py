#!/usr/bin/env python3
"""A minimal TrustGraph text completion processor, for switchyard's flow
interop test: an LlmService subclass from trustgraph-base 2.11.1, launched
as TrustGraph launches its processors (Processor.launch, the same command
line). It follows the configuration service for processor:{id} entries and
runs one Flow per entry, so with --id text-completion it consumes a flow's
request queue on the subscription text-completion--{workspace}--{flow}--request,
the one a Go processor of the same id shares.

It answers a completion with "python:<prompt>", in_token and out_token the
word counts of system plus prompt and of the answer, and model the flow's
"model" parameter. It prints "answered {json}" for every request it
answers, with the Pulsar message id the request came in (its batch index
shows which requests the sender's producer batched into one entry);
TrustGraph's own log lines ("Started flow: default/f2") go to standard
error.

  flow_llm.py --id text-completion --pubsub-backend pulsar --pulsar-host URL \
      --no-metrics --no-loki-enabled
"""

import contextvars
import json
import os
import sys

from trustgraph.base import LlmResult, LlmService

sys.dont_write_bytecode = True


# The message id of the request being handled.
current_message = contextvars.ContextVar("current_message", default=None)


class Processor(LlmService):

    async def on_request(self, msg, consumer, flow):
        raw = getattr(msg, "_msg", None)  # the Pulsar message under TrustGraph's wrapper
        current_message.set(None if raw is None else str(raw.message_id()))
        await super().on_request(msg, consumer, flow)

    async def generate_content(self, system, prompt, model=None, temperature=None,
                               response_format=None, schema=None):
        text = f"python:{prompt}"
        print("answered " + json.dumps({"prompt": prompt, "model": model,
                                        "message_id": current_message.get()}), flush=True)
        return LlmResult(
            text=text,
            in_token=len((system or "").split()) + len(prompt.split()),
            out_token=len(text.split()),
            model=model,
        )


if __name__ == "__main__":
    Processor.launch("text-completion", __doc__)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
