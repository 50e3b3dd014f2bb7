"""Overhead of one tool call on the fake backend: input validation, render, request, parse, validate,
bookkeeping. The fake answers instantly with a fixed JSON text, so what is measured is chainkit's own work.

    python benchmarks/tool_overhead.py [--calls 5000] [--repeats 7]

Last line: {"tool_call_overhead_us": median, ...}. Target: under 50 us for a small template and model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from pydantic import BaseModel

from chainkit.backends.base import Completion, CompletionRequest, Usage
from chainkit.backends.fake import FakeBackend
from chainkit.tools import Tool, ToolSpec


class GradeIn(BaseModel):
    question: str
    answer: str


class GradeOut(BaseModel):
    score: int
    feedback: str


class InstantBackend(FakeBackend):
    """Returns a prebuilt completion: the backend's own cost is ~0, leaving chainkit's overhead."""

    _completion = Completion(text='{"score": 7, "feedback": "good"}', usage=Usage(20, 8), model="instant")

    async def complete(self, request: CompletionRequest) -> Completion:
        return self._completion


async def measure(tool: Tool, calls: int) -> float:
    payload = {"question": "What is 2+2?", "answer": "4"}
    for _ in range(200):  # warm caches (schemas, templates)
        await tool(payload)
    started = time.perf_counter()
    for _ in range(calls):
        await tool(payload)
    return (time.perf_counter() - started) / calls * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    spec = ToolSpec(
        name="grade", input=GradeIn, output=GradeOut, system="You grade answers.",
        user="Question: {{ question }}\nAnswer: {{ answer }}",
    )
    structured = Tool(spec, backend=InstantBackend())
    text_spec = ToolSpec(name="echo", input=GradeIn, user="Say {{ answer }}")
    plain = Tool(text_spec, backend=InstantBackend())
    runs = [await measure(structured, args.calls) for _ in range(args.repeats)]
    plain_runs = [await measure(plain, args.calls) for _ in range(args.repeats)]
    print(f"structured tool call: median {statistics.median(runs):.1f} us  (min {min(runs):.1f}, max {max(runs):.1f})")
    print(f"plain-text tool call: median {statistics.median(plain_runs):.1f} us  "
          f"(min {min(plain_runs):.1f}, max {max(plain_runs):.1f})")
    print(json.dumps({
        "tool_call_overhead_us": round(statistics.median(runs), 1),
        "tool_call_overhead_us_min": round(min(runs), 1),
        "tool_call_overhead_us_max": round(max(runs), 1),
        "plain_tool_call_overhead_us": round(statistics.median(plain_runs), 1),
        "repeats": args.repeats,
        "calls_per_repeat": args.calls,
    }))


if __name__ == "__main__":
    asyncio.run(main())
