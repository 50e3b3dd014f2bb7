"""ChatTutor, the tutoring reference app: tools and memories declared in YAML (tools/tutor/,
memories/tutor/), deterministic functions here, and the interaction/reflection/reaction processes.

Modules: grading (keys, sympy), quiz_checks, plan (plan edits), profile (profile deltas), safety
(instruction and answer-leak checks), triggers (adaptive reflection), review (FSRS), materials
(note ingestion), report (markdown + mastery chart), definitions (loading the YAML), fixtures (courses).
"""
