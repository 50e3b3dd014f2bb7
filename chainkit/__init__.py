"""chainkit: long-running LLM applications from declarative typed tools and typed memories."""

from __future__ import annotations

__version__ = "0.1.0"
