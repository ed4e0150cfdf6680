"""Explainability: model cards (and, later, global and per-prediction explanations)."""

from loopml.explain.card import (
    CodeFacts,
    DatasetFacts,
    GateFacts,
    ModelCard,
    RunFacts,
    StepFacts,
    model_card,
)
from loopml.explain.card_html import render_html, write_html
from loopml.explain.card_sections import CardSection, card_sections, render_text
from loopml.explain.errors import CardWriteError, ExplainError

__all__ = [
    "CardSection",
    "CardWriteError",
    "CodeFacts",
    "DatasetFacts",
    "ExplainError",
    "GateFacts",
    "ModelCard",
    "RunFacts",
    "StepFacts",
    "card_sections",
    "model_card",
    "render_html",
    "render_text",
    "write_html",
]
