"""Tool-usage statistics of tutoring sessions, computed from the trace in the store's SQLite file.

Everything comes from structured events (chainkit_runs, chainkit_events), never from prose:

    from examples.tutor.stats import usage_stats
    stats = usage_stats("tutor.db", user="demo")
    stats["calls_per_tool"]      # {"teach": 4, "classify_message": 7, ...}  (LLM calls, re-asks included)
    stats["reflections"], stats["plan_edits"], stats["actions"]

`python -m examples.tutor.stats tutor.db [user]` prints them as one JSON object.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def usage_stats(path: str | Path, *, user: str | None = None) -> dict[str, Any]:
    """Counts over every run of `user` (all users when None) in the store at `path`."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        runs = db.execute("SELECT run_id, process, scope, status, output FROM chainkit_runs").fetchall()
        selected = {
            run_id: (process, status, output)
            for run_id, process, scope, status, output in runs
            if user is None or json.loads(scope or "{}").get("user") == user
        }
        calls: Counter[str] = Counter()
        failed_attempts: Counter[str] = Counter()
        tokens: Counter[str] = Counter()
        llm_seconds = 0.0
        node_outputs: dict[str, list[Any]] = {}
        for run_id, kind, node_path, data in db.execute(
            "SELECT run_id, kind, node_path, data FROM chainkit_events WHERE kind IN ('llm_call', 'node_end') ORDER BY id"
        ):
            if run_id not in selected:
                continue
            event = json.loads(data)
            if kind == "llm_call":
                calls[event["tool"]] += 1
                if event.get("error"):
                    failed_attempts[event["tool"]] += 1
                tokens[event["tool"]] += int(event.get("completion_tokens") or 0)
                llm_seconds += float(event.get("latency_s") or 0.0)
            elif event.get("status") == "ok" and node_path in (
                "interaction/finish", "reaction/apply", "reflection/finish"
            ):
                node_outputs.setdefault(node_path, []).append(event.get("output") or {})
    finally:
        db.close()
    processes = Counter(process for process, status, _ in selected.values() if status == "succeeded")
    failed = Counter(process for process, status, _ in selected.values() if status not in ("succeeded", "running"))
    turns = node_outputs.get("interaction/finish", [])
    actions = Counter(t.get("action") for t in turns)
    intents = Counter(t.get("intent") for t in turns)
    per_section = Counter(t.get("section") for t in turns if t.get("intent") != "off_topic")
    reactions = node_outputs.get("reaction/apply", [])
    edits = [line for r in reactions for line in r.get("applied") or []]
    reflections = node_outputs.get("reflection/finish", [])
    return {
        "runs_per_process": dict(processes),
        "failed_runs_per_process": dict(failed),
        "calls_per_tool": dict(sorted(calls.items())),
        "rejected_attempts_per_tool": dict(sorted(failed_attempts.items())),
        "completion_tokens_per_tool": dict(sorted(tokens.items())),
        "llm_seconds": round(llm_seconds, 1),
        "turns": len(turns),
        "intents": dict(intents),
        "actions": dict(actions),
        "turns_per_section": dict(per_section),
        "quizzes_made": actions.get("quiz", 0),
        "answers_graded": sum(1 for t in turns if t.get("graded")),
        "answers_correct": sum(1 for t in turns if t.get("correct")),
        "leaks_blocked": sum(1 for t in turns if t.get("leak_blocked")),
        "reflections": len(reflections),
        "reflection_signals": dict(Counter(r.get("signal") for r in reflections)),
        "profile_changes": sum(len(r.get("profile_changes") or []) for r in reflections),
        "reactions": dict(Counter(str(r.get("action")).split(" ")[0] for r in reactions)),
        "plan_edits": len(edits),
        "plan_edits_by_kind": dict(Counter(line.split(" ")[0] for line in edits)),
        "plan_edits_rejected": sum(len(r.get("rejected") or []) for r in reactions),
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(usage_stats(sys.argv[1], user=sys.argv[2] if len(sys.argv) > 2 else None), indent=2))


__all__ = ["usage_stats"]
