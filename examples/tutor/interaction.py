"""The interaction process's deterministic steps: prepare a turn, route it, finish it.

The interaction graph (graphs/interaction.yaml) reads the memories, calls `prepare_turn`, runs the
`classify_message` tool, calls `route_turn`, then exactly one of teach / answer_question / make_quiz /
grade_answer (short answers only), and `finish_turn` decides what is stored. Everything a model says
passes through here before it reaches a memory or the learner:

- a message that tries to instruct the tutor is off-topic whatever the classifier says, and an
  off-topic turn writes nothing but its dialogue entries (no progress, plan, profile, quiz record);
- keyed quiz items (mc, numeric, expression) are graded by `grading.grade_item`, never by a model;
- every reply is checked for a leak of the pending quiz's answer, and replaced when it leaks;
- a generated quiz item is checked (`quiz_checks.check_quiz_item`) before the learner sees it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from .grading import DETERMINISTIC_KINDS, grade_item, normalize_text, parse_number
from .profile import open_misconceptions, profile_brief
from .quiz_checks import check_quiz_item
from .review import due_reviews, new_card, review_card
from .safety import answer_leaks, looks_like_instruction
from .triggers import DEFAULT_EVERY_K_TURNS, reflection_due

QUIZ_AFTER_TURNS = 3  # teaching turns in a section before the tutor offers a quiz by itself
RECENT_TURNS = 6
MATERIAL_CHARS = 300
REMEDIATE_AFTER_WRONG = 2
_QUIZ_WORDS = re.compile(r"\b(quiz|test me|question for me|ask me|exercise|practice)\b", re.I)

_GO_ON = frozenset({"continue", "next", "go on", "more", "ok", "okay", "yes", "go ahead", "more please"})

REDIRECTS = {
    "en": "Let's stay with our course. Ask me about {section}, or say 'continue'.",
    "fr": "Restons sur notre cours. Pose-moi une question sur {section}, ou dis « continue ».",
    "de": "Bleiben wir beim Kurs. Frag mich etwas zu {section} oder sag 'weiter'.",
    "es": "Sigamos con el curso. Pregúntame sobre {section} o di 'continuar'.",
}
LEAK_NOTICE = {
    "en": "Try the quiz first; I will explain the answer after your attempt.",
    "fr": "Essaie d'abord le quiz ; j'expliquerai la réponse après ta tentative.",
}


def data_of(value: Any) -> Any:
    """A memory value or node output as plain JSON-like data (None stays None)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: data_of(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [data_of(v) for v in value]
    return value


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _say(table: Mapping[str, str], language: str) -> str:
    return table.get(language.split("-")[0], table["en"])


# --- prepare -----------------------------------------------------------------------------------------


class TurnContext(BaseModel):
    """What the tools of one turn see. Quiz keys are here only for the code that grades; they are never
    passed to teach / answer_question / make_quiz."""

    onboarded: bool
    structured: bool
    finished: bool
    section_id: str
    section_title: str
    objectives: list[str]
    objective_ids: list[str]
    key_points: list[str]
    depth: str
    focus_objective: str
    focus_text: str
    review_objective: str = ""  # set when a requested quiz reviews a due objective (spaced review)
    profile: str
    language: str
    recent: list[str]
    last_tutor: str
    material: list[str]
    material_ids: list[str]
    misconceptions: list[str]
    avoid: list[str]
    quiz_pending: bool
    quiz_kind: str
    quiz_question: str
    quiz_rubric: str
    quiz_reference: str
    quiz_objective: str
    instruction: bool
    keyed_answer: bool
    asks_for_quiz: bool
    attempt_like: bool
    skip_classify: bool
    section_wrong: dict[str, int]
    section_met: list[str]


def current_section(plan: Mapping[str, Any] | None, progress: Mapping[str, Any]) -> dict[str, Any] | None:
    if not plan:
        return None
    wanted = progress.get("current_section")
    for section in plan.get("sections") or []:
        if section["id"] == wanted:
            return section
    return None


def _line(entry: Mapping[str, Any]) -> str:
    role = entry.get("role", "?")
    text = " ".join(str(entry.get("text", "")).split())
    return f"{role}: {text[:400]}"


def prepare_turn(
    message: str,
    structured: bool,
    plan: Any,
    progress: Any,
    profile: Any,
    recent: list[Any],
    materials: list[Any],
    records: list[Any],
    cards: list[Any] | None = None,
) -> TurnContext:
    plan_d, progress_d, profile_d = data_of(plan), data_of(progress) or {}, data_of(profile)
    entries = [data_of(e) for e in recent or []]
    lines = [_line(e) for e in entries][-RECENT_TURNS:]
    last_tutor = next((str(e.get("text", "")) for e in reversed(entries) if e.get("role") == "tutor"), "")
    section = current_section(plan_d, progress_d)
    section_id = str(progress_d.get("current_section") or "")
    language = (profile_d or {}).get("preferences", {}).get("language") or (plan_d or {}).get("language") or "en"
    if structured:
        onboarded = plan_d is not None
        title = section["title"] if section else ""
        objectives = [f"{o['id']}: {o['text']}" for o in (section or {}).get("objectives") or []]
        objective_ids = [o["id"] for o in (section or {}).get("objectives") or []]
        key_points = list((section or {}).get("key_points") or [])
        depth = (section or {}).get("depth") or "standard"
        brief = profile_brief(profile_d) if profile_d else ""
        misconceptions = open_misconceptions(profile_d) if profile_d else []
    else:
        # Ablation "no structured memory": the plan and the profile live only in the chat context.
        onboarded = bool(entries) or bool(section_id)
        number = section_id.lstrip("s") or "1"
        title = f"part {number} of the course plan in the recent turns"
        objective_ids = [f"{section_id or 's1'}.o1"]
        objectives = [f"{objective_ids[0]}: the goals of {title}"]
        key_points, depth, brief, misconceptions = [], "standard", "", []
        lines = [_line(e) for e in entries][-2 * RECENT_TURNS:]
    met = set(progress_d.get("objectives_met") or [])
    section_records = [data_of(r) for r in records or [] if data_of(r).get("section") == section_id]
    wrong: dict[str, int] = {}
    for record in section_records:
        if not record.get("correct"):
            wrong[record["objective"]] = wrong.get(record["objective"], 0) + 1
    focus = next((o for o in objective_ids if o not in met), objective_ids[0] if objective_ids else "")
    focus_text = next((o.split(": ", 1)[1] for o in objectives if o.startswith(f"{focus}: ")), title)
    pending = progress_d.get("pending_quiz")
    quiz_pending = bool(pending) and int(pending.get("attempts") or 0) == 0
    review = ""
    if structured and cards and not pending and _QUIZ_WORDS.search(message):
        # Spaced review: a requested quiz goes to the least-retained objective that FSRS says is due.
        due = due_reviews([data_of(c) for c in cards], now=dt.datetime.now(dt.UTC), limit=1)
        texts = {o["id"]: o["text"] for s in (plan_d or {}).get("sections") or [] for o in s.get("objectives") or []}
        if due and due[0] in texts:
            review, focus, focus_text = due[0], due[0], texts[due[0]]
    instruction = looks_like_instruction(message)
    keyed = False
    if quiz_pending and pending.get("kind") in DETERMINISTIC_KINDS and not instruction:
        keyed = _reads_as_answer(pending, message)
    material_rows = [data_of(m) for m in materials or []]
    finished = progress_d.get("phase") == "finished" or (onboarded and structured and section is None)
    return TurnContext(
        onboarded=onboarded,
        structured=structured,
        finished=finished,
        section_id=section_id,
        section_title=title,
        objectives=objectives,
        objective_ids=objective_ids,
        key_points=key_points,
        depth=depth if depth in ("overview", "standard", "deep") else "standard",
        focus_objective=focus,
        focus_text=focus_text or title,
        review_objective=review,
        profile=brief,
        language=language,
        recent=lines,
        last_tutor=" ".join(last_tutor.split())[:300],
        material=[f"[{m['id']}] {m.get('title', '')}: {' '.join(m['text'].split())[:MATERIAL_CHARS]}" for m in material_rows],
        material_ids=[m["id"] for m in material_rows],
        misconceptions=misconceptions[-3:],
        avoid=[r["question"] for r in section_records][-5:],
        quiz_pending=quiz_pending,
        quiz_kind=str(pending.get("kind")) if pending else "",
        quiz_question=str(pending.get("question")) if pending else "",
        quiz_rubric=str(pending.get("rubric") or "") if pending else "",
        quiz_reference=str(pending.get("answer")) if pending and pending.get("kind") == "short" else "",
        quiz_objective=str(pending.get("objective")) if pending else "",
        instruction=instruction,
        keyed_answer=keyed,
        asks_for_quiz=bool(_QUIZ_WORDS.search(message)),
        attempt_like=normalize_text(message) not in _GO_ON and not _QUIZ_WORDS.search(message),
        skip_classify=instruction or keyed or finished or not onboarded,
        section_wrong=wrong,
        section_met=sorted(met & set(objective_ids)),
    )


def _reads_as_answer(pending: Mapping[str, Any], message: str) -> bool:
    """Whether a message is an attempt at the pending keyed item (the grader can read it)."""
    if len(message.split()) > 12:
        return False
    try:
        grade = grade_item(pending, message)
    except Exception:  # a malformed stored item: let the classifier decide
        return False
    return grade.recognized


# --- route -------------------------------------------------------------------------------------------


class Route(BaseModel):
    intent: str
    action: str  # teach | answer | quiz | grade_key | grade_rubric | remind | redirect | finished | not_started


def route_turn(context: TurnContext, intent: str = "", phase: str = "teaching", turns_in_section: int = 0) -> Route:
    if not context.onboarded:
        return Route(intent="off_topic", action="not_started")
    if context.instruction:
        return Route(intent="off_topic", action="redirect")  # the message stays data, whatever a model says
    if context.keyed_answer:
        return Route(intent="quiz_answer", action="grade_key")
    if context.finished:
        return Route(intent=intent or "continue", action="finished")
    intent = intent or "continue"
    if context.quiz_pending and (intent == "quiz_answer" or (context.attempt_like and intent in ("continue", "preference"))):
        # A small classifier often calls an answer "continue": while a quiz waits, a message that is not
        # a question, a request or a plain "go on" is read as the attempt.
        return Route(intent="quiz_answer", action="grade_rubric" if context.quiz_kind == "short" else "grade_key")
    if intent == "quiz_answer":
        intent = "continue"  # nothing to answer: treat as wanting the next step
    if intent == "off_topic":
        return Route(intent=intent, action="redirect")
    if context.asks_for_quiz and not context.quiz_pending:
        return Route(intent=intent, action="quiz")
    if intent == "question":
        return Route(intent=intent, action="answer")
    if context.quiz_pending:
        return Route(intent=intent, action="remind")
    wants_quiz = context.asks_for_quiz or phase == "quizzing" or turns_in_section >= QUIZ_AFTER_TURNS
    if intent in ("continue", "change_request") and wants_quiz:
        return Route(intent=intent, action="quiz")
    return Route(intent=intent, action="teach")


# --- finish ------------------------------------------------------------------------------------------


class TurnOutcome(BaseModel):
    # Values bound for memories are typed Any: those models are compiled from memories/tutor/*.yaml when
    # the app loads, and the write node validates against them (a bad value fails the run, writes nothing).
    reply: str
    intent: str
    action: str
    section: str
    leak_blocked: bool = False
    quiz_rejected: list[str] = []
    graded: bool = False
    correct: bool | None = None
    misconception: str | None = None
    taught: list[str] = []
    cited: list[str] = []
    progress: Any
    progress_changed: bool
    record: Any = None
    card: Any = None
    learner_entry: Any
    tutor_entry: Any
    reflect: bool = False
    reflect_reason: str = ""
    rule_signal: str = "keep_teaching"


def quiz_display(item: Mapping[str, Any]) -> str:
    text = str(item["question"]).strip()
    options = item.get("options") or []
    if options:
        text += "\n" + "\n".join(f"  {'abcdefghij'[i]}) {o}" for i, o in enumerate(options))
    return text


def quiz_item_from_tool(output: Mapping[str, Any], context: TurnContext, *, at: str, turn: int = 0
                        ) -> tuple[dict[str, Any] | None, list[str]]:
    """A `progress.pending_quiz` item from a `make_quiz` output, or (None, problems). A multiple-choice
    item whose key is not among its options becomes a numeric or short item when that still makes a
    fair question (the key is kept; only the options go)."""
    options = [str(o).strip() for o in output.get("options") or [] if str(o).strip()]
    answer = str(output.get("answer") or "").strip()
    base = {
        "item_id": f"g{turn}-{context.focus_objective}",  # the turn number makes it unique per learner
        "objective": context.focus_objective,
        "question": str(output.get("question") or "").strip(),
        "answer": answer,
        "rubric": str(output.get("rubric") or "").strip(),
        "distractors": {},
        "attempts": 0,
        "asked_at": at,
    }
    candidates = []
    if len(options) >= 2:
        targets = str(output.get("targets") or "").strip()
        distractors = {o: targets for o in options[:4] if normalize_text(o) != normalize_text(answer)} if targets else {}
        candidates.append({**base, "kind": "mc", "options": options[:4], "distractors": distractors})
    if parse_number(answer) is not None and len(answer) <= 20:
        candidates.append({**base, "kind": "numeric", "options": []})
    candidates.append({**base, "kind": "short", "options": [], "rubric": base["rubric"] or f"The answer says: {answer}"})
    problems: list[str] = []
    for item in candidates:
        found = check_quiz_item(item, earlier_questions=context.avoid)
        if not found and not answer_leaks(quiz_display(item), item):
            return item, problems
        problems += [f"{item['kind']}: {p}" for p in found] or [f"{item['kind']}: the question shows its answer"]
    return None, problems


def rule_signal(context: TurnContext, *, met: Sequence[str], wrong: Mapping[str, int], turns_in_section: int,
                quiz_pending: bool) -> str:
    """What the code rules say about the section: advance when every objective has a correct graded
    answer, remediate after repeated wrong answers on one objective, offer a quiz after some teaching."""
    if context.objective_ids and all(o in met for o in context.objective_ids):
        return "advance"
    if any(n >= REMEDIATE_AFTER_WRONG for n in wrong.values()):
        return "remediate"
    if not quiz_pending and turns_in_section >= QUIZ_AFTER_TURNS:
        return "offer_quiz"
    return "keep_teaching"


def finish_turn(
    message: str,
    session: str,
    context: TurnContext,
    route: Route,
    progress: Any,
    teach: Any = None,
    answer: Any = None,
    quiz: Any = None,
    rubric_grade: Any = None,
    card: Any = None,
    every_k: int = DEFAULT_EVERY_K_TURNS,
    at: str = "",
) -> TurnOutcome:
    at = at or now_iso()
    progress_d = dict(data_of(progress) or {})
    before = data_of(progress_d)
    language = context.language
    action, intent = route.action, route.intent
    pending = progress_d.get("pending_quiz")
    reply = ""
    taught: list[str] = []
    cited: list[str] = []
    record = new_card_value = None
    graded = False
    correct = misconception = None
    quiz_rejected: list[str] = []
    if action == "not_started":
        reply = "We have not planned a course yet: start one first (chainkit tutor asks the questions)."
    elif action == "redirect":
        reply = _say(REDIRECTS, language).format(section=context.section_title or "the course")
    elif action == "finished":
        reply = "You have finished the course. Type /report for your report, or ask me a question."
    elif action == "remind":
        reply = "Your quiz question is still open:\n" + quiz_display(pending)
    elif action == "teach" and teach is not None:
        out = data_of(teach)
        reply = out["reply"]
        taught = [t for t in out.get("taught") or [] if t in context.objective_ids] or [context.focus_objective]
        cited = [c for c in out.get("cited") or [] if c in context.material_ids]
    elif action == "answer" and answer is not None:
        out = data_of(answer)
        reply = out["reply"]
        cited = [c for c in out.get("cited") or [] if c in context.material_ids]
    elif action == "quiz" and quiz is not None:
        item, quiz_rejected = quiz_item_from_tool(data_of(quiz), context, at=at,
                                                  turn=int(progress_d.get("total_turns") or 0) + 1)
        if item is None:
            action = "quiz_failed"
            reply = "I could not write a fair quiz question this time; let's keep going. Say 'continue'."
        else:
            pending = item
            progress_d["pending_quiz"] = item
            progress_d["phase"] = "quizzing"
            reply = "Quiz: " + quiz_display(item)
    elif action in ("grade_key", "grade_rubric") and pending:
        if action == "grade_key":
            grade = grade_item(pending, message)
            if not grade.recognized:
                reply = grade.feedback + "\n" + quiz_display(pending)
                action = "unreadable_answer"
            else:
                graded, correct, misconception = True, grade.correct, grade.misconception
                score = grade.score
                feedback = grade.feedback if grade.correct else f"{grade.feedback} The answer is {pending['answer']}."
        else:
            out = data_of(rubric_grade) if rubric_grade is not None else None
            if out is None:
                reply, action = "I could not grade that answer; try again.", "unreadable_answer"
            else:
                graded, score = True, float(out["score"])
                correct = bool(out["correct"]) and score >= 1.0
                misconception = out.get("misconception") or None
                feedback = out["feedback"] or ("Correct." if correct else "Not quite.")
        if graded:
            reply = feedback
            record = {
                "id": pending["item_id"], "item_id": pending["item_id"], "objective": pending["objective"],
                "section": context.section_id, "kind": pending["kind"], "question": pending["question"],
                "answer": message, "correct": bool(correct), "score": score, "feedback": feedback,
                "misconception": misconception, "graded_by": "key" if action == "grade_key" else "rubric",
                "session": session, "time": at,
            }
            progress_d["pending_quiz"] = None
            progress_d["phase"] = "teaching"
            if correct:
                met = list(progress_d.get("objectives_met") or [])
                if pending["objective"] not in met:
                    met.append(pending["objective"])
                progress_d["objectives_met"] = met
            existing = data_of(card) if card is not None else None
            base_card = existing or new_card(pending["objective"], section=context.section_id,
                                             now=dt.datetime.fromisoformat(at))
            new_card_value = review_card(base_card, score, now=dt.datetime.fromisoformat(at))
    else:  # a tool that should have run was skipped or failed to produce output
        reply = "Sorry, I lost my train of thought. Say 'continue' and we go on."
        action = "no_reply"

    # No answer before an attempt: every reply is checked against the quiz still waiting for one.
    leak_blocked = False
    waiting = progress_d.get("pending_quiz")
    if waiting and action not in ("quiz", "remind") and answer_leaks(reply, waiting):
        leak_blocked = True
        reply = _say(LEAK_NOTICE, language) + "\n" + quiz_display(waiting)

    on_topic = intent != "off_topic" and action not in ("redirect", "not_started")
    decision = reflection_due(intent=intent, graded=graded,
                              turns_since_reflection=int(progress_d.get("turns_since_reflection") or 0) + 1,
                              every_k_turns=every_k)
    if on_topic:
        progress_d["total_turns"] = int(progress_d.get("total_turns") or 0) + 1
        progress_d["turns_in_section"] = int(progress_d.get("turns_in_section") or 0) + 1
        progress_d["turns_since_reflection"] = 0 if decision.run else int(progress_d.get("turns_since_reflection") or 0) + 1
        if progress_d.get("last_session") != session and session:
            progress_d["sessions"] = int(progress_d.get("sessions") or 0) + 1
            progress_d["last_session"] = session
    wrong = dict(context.section_wrong)
    if graded and not correct and record is not None:
        wrong[record["objective"]] = wrong.get(record["objective"], 0) + 1
    signal = rule_signal(context, met=progress_d.get("objectives_met") or [], wrong=wrong,
                         turns_in_section=int(progress_d.get("turns_in_section") or 0),
                         quiz_pending=bool(progress_d.get("pending_quiz")))
    entry_base = {"session": session, "section": context.section_id or None, "at": at}
    return TurnOutcome(
        reply=reply,
        intent=intent,
        action=action,
        section=context.section_id,
        leak_blocked=leak_blocked,
        quiz_rejected=quiz_rejected,
        graded=graded,
        correct=correct,
        misconception=misconception,
        taught=taught,
        cited=cited,
        progress=progress_d,
        progress_changed=on_topic and progress_d != before,
        record=record,
        card=new_card_value,
        learner_entry={**entry_base, "role": "learner", "text": message, "intent": intent},
        tutor_entry={**entry_base, "role": "tutor", "text": reply, "intent": action},
        reflect=on_topic and decision.run,
        reflect_reason=decision.reason,
        rule_signal=signal if on_topic else "keep_teaching",
    )


__all__ = [
    "QUIZ_AFTER_TURNS",
    "Route",
    "TurnContext",
    "TurnOutcome",
    "current_section",
    "data_of",
    "finish_turn",
    "prepare_turn",
    "quiz_display",
    "quiz_item_from_tool",
    "route_turn",
    "rule_signal",
]
