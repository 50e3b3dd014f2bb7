"""Rich renderings of traced runs for `chainkit trace`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

_PREVIEW = 300


def render_runs(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="runs (newest first)")
    for column in ("run", "process", "graph", "status", "started", "took", "scope"):
        table.add_column(column)
    for run in runs:
        started = dt.datetime.fromtimestamp(run["started_at"]).strftime("%Y-%m-%d %H:%M:%S") if run["started_at"] else ""
        took = f"{run['duration_s'] * 1000:.0f} ms" if run.get("duration_s") is not None else ""
        status = run["status"]
        style = {"succeeded": "green", "ok": "green", "failed": "red", "running": "yellow"}.get(status, "")
        table.add_row(run["run_id"][:12], run.get("process") or "", run.get("graph") or "",
                      Text(status, style=style), started, took, json.dumps(run.get("scope") or {}))
    return table


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + " …"


def _event_line(event: dict[str, Any]) -> Text | None:
    kind, data = event["kind"], event["data"]
    if kind == "llm_call":
        usage = data.get("usage") or {}
        prompt = data.get("prompt_tokens", usage.get("prompt_tokens", 0))
        completion = data.get("completion_tokens", usage.get("completion_tokens", 0))
        latency = data.get("latency_s") or 0
        line = Text(f"llm {data.get('tool')} #{data.get('attempt', 1)} ", style="cyan")
        line.append(f"{data.get('model', '')} {prompt}+{completion} tok {latency * 1000:.0f} ms")
        if data.get("cost_usd"):
            line.append(f" ${data['cost_usd']:.6f}")
        if data.get("error"):
            line.append(f" rejected: {data['error']}", style="red")
        return line
    if kind == "memory_write":
        return Text(f"write {data.get('memory')} {data.get('op')} v{data.get('version')}", style="magenta")
    if kind == "node_skipped":
        return Text("skipped", style="dim")
    if kind == "node_retry":
        return Text(f"retry: {data.get('error', '')}", style="yellow")
    return None


def render_run(tree: dict[str, Any]) -> Tree:
    def label(node: dict[str, Any]) -> Text:
        text = Text(node.get("name") or node.get("path") or "run", style="bold")
        ends = [e for e in node["events"] if e["kind"] in ("node_end", "run_end")]
        if ends:
            data = ends[-1]["data"]
            took = data.get("latency_s", data.get("duration_s"))
            if took is not None:
                text.append(f"  {took * 1000:.1f} ms", style="dim")
            if data.get("status") and data["status"] not in ("ok", "succeeded"):
                text.append(f"  {data['status']}", style="red")
            if data.get("error"):
                text.append(f"  {data['error']}", style="red")
        return text

    def build(branch: Tree, node: dict[str, Any]) -> None:
        for event in node["events"]:
            line = _event_line(event)
            if line is None:
                continue
            leaf = branch.add(line)
            if event["kind"] == "llm_call":
                data = event["data"]
                for message in data.get("messages") or []:
                    leaf.add(Text(f"{message.get('role')}: {_short(message.get('content', ''))}", style="dim"))
                leaf.add(Text(f"answer: {_short(data.get('response', ''))}"))
        ends = [e for e in node["events"] if e["kind"] == "node_end"]
        if ends and "output" in ends[-1]["data"]:
            branch.add(Text(f"output: {_short(ends[-1]['data']['output'])}", style="green"))
        for child in node["children"]:
            build(branch.add(label(child)), child)

    root = Tree(label(tree))
    build(root, tree)
    return root
