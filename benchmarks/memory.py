"""Memory store benchmark: per-operation rates and the cost of one tutoring turn vs history length.

    python benchmarks/memory.py [--repeats 5] [--turns 60]

A "tutoring turn" of memory work: read the learner profile, read the course plan, read the last
turns within a 1,000-token budget, append two turns (learner and tutor), patch progress.
It is measured on sessions holding 10, 1,000 and 10,000 stored turns, all in the same SQLite file,
interleaved across repeats so drift hits every size alike. Figures are medians over repeats, with
the spread (min..max of the per-repeat medians). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from chainkit.memory import Collection, Document, Log, Scope, SQLiteStore


class Profile(BaseModel):
    name: str
    level: int = 1
    goals: list[str] = []


class Plan(BaseModel):
    topic: str
    steps: list[str]


class Progress(BaseModel):
    lessons_done: int = 0
    last_topic: str = ""


class Learner(BaseModel):
    profile: Profile
    progress: Progress = Progress()


class Turn(BaseModel):
    role: Literal["learner", "tutor", "summary"]
    text: str


class QuizRecord(BaseModel):
    id: str
    topic: str
    question: str
    feedback: str = ""


LEARNER = Document("learner", Learner, scope="user")
PLAN = Document("plan", Plan, scope="user")
DIALOGUE = Log("dialogue", Turn, scope="session")
QUIZ = Collection("quiz", QuizRecord, scope="user", text_fields=["question", "feedback"], indexes=["topic"])

LEARNER_TEXT = "Could you explain again why the light reactions need water, and what happens to the oxygen?"
TUTOR_TEXT = (
    "Water is split in photosystem II to replace the electrons that light knocked loose; "
    "the oxygen atoms pair up and leave the leaf as O2. Want a quick quiz on it?"
)
WORDS = [
    "photosynthesis",
    "chlorophyll",
    "glucose",
    "enzyme",
    "osmosis",
    "mitosis",
    "acid",
    "base",
    "ion",
    "vector",
    "force",
    "energy",
    "light",
    "water",
    "carbon",
    "oxygen",
]


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


async def _rate(op: Callable[[int], Awaitable[Any]], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await op(i)
    return n / (time.perf_counter() - start)


async def _fill(store: SQLiteStore, scope: Scope, turns: int) -> None:
    log = store.log(DIALOGUE)
    for start in range(0, turns, 500):
        async with store.transaction():  # batched so setup of 10,000 turns stays quick
            for i in range(start, min(start + 500, turns)):
                await log.append(
                    scope,
                    {
                        "role": "learner" if i % 2 == 0 else "tutor",
                        "text": LEARNER_TEXT if i % 2 == 0 else TUTOR_TEXT,
                    },
                )


async def _turn(store: SQLiteStore, scope: Scope, n: int) -> None:
    learner, plan, log = store.document(LEARNER), store.document(PLAN), store.log(DIALOGUE)
    await learner.get(scope)
    await plan.get(scope)
    await log.window(scope, 1000)
    await log.append(scope, {"role": "learner", "text": LEARNER_TEXT})
    await log.append(scope, {"role": "tutor", "text": TUTOR_TEXT})
    await learner.patch(scope, {"progress": {"lessons_done": n, "last_topic": "photosynthesis"}})


async def main(repeats: int, turns: int) -> dict[str, Any]:
    sizes = (10, 1000, 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        async with SQLiteStore(Path(tmp) / "bench.db") as store:
            # --- per-operation rates ---------------------------------------------------------
            rates: dict[str, list[float]] = {"append": [], "window": [], "patch": [], "search": [], "get": []}
            rate_scope = Scope(user="rates", session="r")
            await store.document(LEARNER).replace(rate_scope, {"profile": {"name": "R"}})
            await _fill(store, rate_scope, 2000)
            quiz = store.collection(QUIZ)
            async with store.transaction():
                for i in range(2000):
                    a, b, c = WORDS[i % 16], WORDS[(i * 7) % 16], WORDS[(i * 11) % 16]
                    await quiz.put(
                        rate_scope,
                        {
                            "id": f"q{i}",
                            "topic": WORDS[i % 5],
                            "question": f"What links {a} and {b}?",
                            "feedback": f"review {c}",
                        },
                    )
            log, learner = store.log(DIALOGUE), store.document(LEARNER)
            for _ in range(repeats):
                rates["append"].append(
                    await _rate(lambda i: log.append(rate_scope, {"role": "tutor", "text": TUTOR_TEXT}), 400)
                )
                rates["window"].append(await _rate(lambda i: log.window(rate_scope, 1000), 400))
                rates["patch"].append(
                    await _rate(lambda i: learner.patch(rate_scope, {"progress": {"lessons_done": i}}), 400)
                )
                rates["get"].append(await _rate(lambda i: learner.get(rate_scope), 400))
                rates["search"].append(
                    await _rate(
                        lambda i: quiz.search(rate_scope, f"{WORDS[i % 16]} {WORDS[(i + 3) % 16]}"), 400
                    )
                )

            # --- tutoring turn vs stored history -----------------------------------------------
            # Each measured turn should see its nominal history: the 10-turn case uses a fresh
            # session per turn, the 1,000-turn case a fresh session per repeat (it grows by
            # 2 * turns), the 10,000-turn case one session (it grows by at most 2 * turns * repeats).
            counter = iter(range(1_000_000))

            async def new_session(size: int) -> Scope:
                scope = Scope(user=f"learner{size}", session=f"s{next(counter)}")
                await _fill(store, scope, size)
                return scope

            await store.document(LEARNER).replace(Scope(user="learner10"), {"profile": {"name": "Ada"}})
            for size in sizes:
                user = Scope(user=f"learner{size}")
                await store.document(LEARNER).replace(
                    user, {"profile": {"name": "Ada", "goals": ["biology"]}}
                )
                await store.document(PLAN).replace(
                    user, {"topic": "photosynthesis", "steps": ["light reactions", "Calvin cycle", "quiz"]}
                )
            big = await new_session(10_000)
            for n in range(5):  # warm caches and code paths
                await _turn(store, big, n)
            per_repeat: dict[int, list[float]] = {size: [] for size in sizes}
            window_len: dict[int, list[int]] = {size: [] for size in sizes}
            for _ in range(repeats):
                mid = await new_session(1000)
                fresh = [await new_session(10) for _ in range(turns)]
                for size in sizes:
                    samples = []
                    for n in range(turns):
                        scope = fresh[n] if size == 10 else mid if size == 1000 else big
                        window_len[size].append(len(await store.log(DIALOGUE).window(scope, 1000)))
                        start = time.perf_counter()
                        await _turn(store, scope, n)
                        samples.append((time.perf_counter() - start) * 1e6)
                    per_repeat[size].append(statistics.median(samples))

    turn = {size: statistics.median(values) for size, values in per_repeat.items()}
    print(f"repeats={repeats} turns/repeat={turns}")
    for size in sizes:
        print(
            f"turn @ {size:>6} stored turns: {_spread(per_repeat[size])} us  (window holds {statistics.median(window_len[size]):.0f} entries)"
        )
    for name, values in rates.items():
        print(f"{name:>7}: {_spread(values)} ops/s")
    result: dict[str, Any] = {
        "turn_us_10": round(turn[10], 1),
        "turn_us_1000": round(turn[1000], 1),
        "turn_us_10000": round(turn[10_000], 1),
        "turn_cost_ratio_10000_vs_10": round(turn[10_000] / turn[10], 3),
    }
    for name, values in rates.items():
        result[f"{name}_ops_per_s"] = round(statistics.median(values), 1)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--turns", type=int, default=60)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.repeats, args.turns))))
