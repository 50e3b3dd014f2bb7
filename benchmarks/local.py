"""The embedded `local` backend against direct xllamacpp calls, side by side in one run.

    python benchmarks/local.py                 # throughput, shared-prefix TTFT, peak RSS
    python benchmarks/local.py --threads       # also: 1 vs 2 threads, other core idle and busy
    python benchmarks/local.py --rounds 7

Throughput: the same greedy requests (same messages, settings and llama.cpp instance) sent once
directly through `xllamacpp.Server.handle_chat_completions` and once through `LocalBackend.complete`
(worker thread, internal streaming, asyncio), interleaved round by round so that noise from other
processes hits both alike; tokens/s = generated tokens / wall time of the request. Every request has
a fresh user message, so neither side gets more cache hits than the other.

Shared prefix: a ~400-token system prompt never seen before (a nonce leads it), asked twice with
different questions; time to first token of each call.

Last line: one JSON object with the headline figures (medians); spread is printed above it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

from chainkit.backends.base import CompletionRequest, ModelSettings
from chainkit.backends.local import LocalBackend

TOPICS = ["volcanoes", "the moon", "bees", "rivers", "bread", "trains", "clouds", "chess", "glaciers", "owls"]


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} (min {min(values):.1f}, max {max(values):.1f}, n={len(values)})"


def messages(topic: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"[{uuid.uuid4().hex[:8]}] Write a short paragraph about {topic}."}]


async def throughput(backend: LocalBackend, rounds: int, max_tokens: int) -> tuple[list[float], list[float]]:
    server = (await asyncio.to_thread(backend._loaded)).server
    settings = ModelSettings(temperature=0.0, max_tokens=max_tokens, seed=1)
    raw_rates, chainkit_rates = [], []
    for index in range(rounds):
        topic = TOPICS[index % len(TOPICS)]
        # Direct call: the same payload the backend builds, minus streaming.
        payload = backend._payload(CompletionRequest(messages(topic), settings))
        payload.pop("stream")
        payload.pop("stream_options")
        started = time.perf_counter()
        answer = await asyncio.to_thread(server.handle_chat_completions, payload)
        raw_rates.append(answer["usage"]["completion_tokens"] / (time.perf_counter() - started))

        started = time.perf_counter()
        completion = await backend.complete(CompletionRequest(messages(topic), settings))
        chainkit_rates.append(completion.usage.completion_tokens / (time.perf_counter() - started))
    return raw_rates, chainkit_rates


async def shared_prefix(
    backend: LocalBackend, rounds: int
) -> tuple[list[float], list[float], list[int], int]:
    rules = " ".join(f"Rule {i}: answer about topic {i} briefly and kindly." for i in range(25))
    firsts, seconds, cached = [], [], []
    prefix_tokens = 0
    settings = ModelSettings(temperature=0.0, max_tokens=8)
    for _ in range(rounds):
        system = f"Session {uuid.uuid4().hex}. You are a patient tutor. {rules}"
        prefix_tokens = backend.count_tokens(system)
        for question, sink in (("What is 2 + 2?", firsts), ("Name a primary colour.", seconds)):
            request = CompletionRequest(
                [{"role": "system", "content": system}, {"role": "user", "content": question}], settings
            )
            completion = await backend.complete(request)
            assert completion.ttft_s is not None
            sink.append(completion.ttft_s * 1000)
        cached.append(completion.usage.cached_tokens)
    return firsts, seconds, cached, prefix_tokens


async def thread_scaling(rounds: int, max_tokens: int) -> dict[str, float]:
    results: dict[str, float] = {}
    settings = ModelSettings(temperature=0.0, max_tokens=max_tokens, seed=1)
    for busy in (False, True):
        hog = None
        if busy:  # one CPU-bound process: "the other core is busy"
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for threads in (1, 2):
                backend = LocalBackend(threads=threads)
                await backend.load()
                rates = []
                for index in range(rounds):
                    completion = await backend.complete(
                        CompletionRequest(messages(TOPICS[index % 10]), settings)
                    )
                    rates.append(completion.usage.completion_tokens / completion.latency_s)
                await backend.aclose()
                label = f"threads={threads} other_core={'busy' if busy else 'idle'}"
                print(f"{label}: tokens/s {spread(rates)}", flush=True)
                results[label] = statistics.median(rates)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", action="store_true", help="also measure 1 vs 2 threads, idle and busy")
    args = parser.parse_args()

    print(f"cpus={os.cpu_count()} load average={os.getloadavg()}", flush=True)
    if args.threads:
        await thread_scaling(max(3, args.rounds // 2), args.max_tokens)

    backend = LocalBackend()
    load_s = await backend.load()
    print(f"model {backend.model_path} loaded in {load_s:.2f} s, threads={backend.threads}", flush=True)
    await backend.complete(CompletionRequest(messages("warm-up"), ModelSettings(max_tokens=4)))

    raw, ours = await throughput(backend, args.rounds, args.max_tokens)
    ratios = [b / a for a, b in zip(raw, ours, strict=True)]
    print(f"raw xllamacpp tokens/s:   {spread(raw)}")
    print(f"chainkit local tokens/s:  {spread(ours)}")
    print(
        f"ratio chainkit/raw:       median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )

    firsts, seconds, cached, prefix = await shared_prefix(backend, args.rounds)
    print(f"shared prefix: {prefix} tokens; cached tokens on the second call: {cached}")
    print(f"TTFT first call ms:         {spread(firsts)}")
    print(f"TTFT shared-prefix call ms: {spread(seconds)}")
    print(
        f"ratio second/first: median {statistics.median(s / f for f, s in zip(firsts, seconds, strict=True)):.3f}"
    )
    await backend.aclose()

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "raw_tok_s": round(statistics.median(raw), 1),
                "chainkit_tok_s": round(statistics.median(ours), 1),
                "ttft_first_ms": round(statistics.median(firsts), 1),
                "ttft_shared_prefix_ms": round(statistics.median(seconds), 1),
                "peak_rss_mb": round(peak_rss_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
