"""Where the tutor's declarations live, and loading them.

The tool and memory definitions are YAML files under `tools/tutor/` and `memories/tutor/`, two folders
up from this package both in a checkout (`examples/tutor/`) and in the wheel
(`chainkit/_bundled/examples/tutor/`, next to `chainkit/_bundled/tools/`).
"""

from __future__ import annotations

from pathlib import Path

from chainkit.loader import load_memory_file, load_tool_file
from chainkit.memory import MemorySpec
from chainkit.tools import ToolSpec

ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = ROOT / "tools" / "tutor"
MEMORIES_DIR = ROOT / "memories" / "tutor"

TOOL_NAMES = (
    "plan_course", "adjust_plan", "classify_message", "teach", "answer_question", "make_quiz",
    "grade_answer", "summarize_dialogue", "update_profile", "judge_progress", "course_report",
    "single_prompt_tutor",  # the baseline of the ablation study, not part of the tutor's chains
)
MEMORY_NAMES = ("course_plan", "progress", "learner_profile", "dialogue", "quiz_records", "materials", "review_cards")


def tool_specs() -> dict[str, ToolSpec]:
    """Every tutor tool, by name (each file loaded and checked; a broken file raises DefinitionError)."""
    return {name: load_tool_file(TOOLS_DIR / f"{name}.yaml") for name in TOOL_NAMES}


def memory_specs() -> dict[str, MemorySpec]:
    return {name: load_memory_file(MEMORIES_DIR / f"{name}.yaml") for name in MEMORY_NAMES}


__all__ = ["MEMORIES_DIR", "MEMORY_NAMES", "TOOLS_DIR", "TOOL_NAMES", "memory_specs", "tool_specs"]
