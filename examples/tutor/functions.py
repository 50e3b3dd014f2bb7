"""The tutor's deterministic functions, registered for the graphs (app.yaml names this module).

Each one is a plain function of its inputs (memories read by the graph, tool outputs); none touches
the store, so every write stays a staged, atomic, version-checked graph write.
"""

from __future__ import annotations

from typing import Any

from .interaction import finish_turn, prepare_turn, route_turn
from .onboarding import course_brief, dialogue_lines, report_facts, start_course
from .reaction import apply_reaction, prepare_reaction
from .reflection import finish_reflection, prepare_reflection

FUNCTIONS = {
    "prepare_turn": prepare_turn,
    "route_turn": route_turn,
    "finish_turn": finish_turn,
    "prepare_reflection": prepare_reflection,
    "finish_reflection": finish_reflection,
    "prepare_reaction": prepare_reaction,
    "apply_reaction": apply_reaction,
    "start_course": start_course,
    "course_brief": course_brief,
    "dialogue_lines": dialogue_lines,
    "report_facts": report_facts,
}


def register(registry: Any) -> None:
    for name, fn in FUNCTIONS.items():
        registry.register_function(name, fn)
