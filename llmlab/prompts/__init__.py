"""Prompt sets: loading, validation, ``{var}`` templates, categories, references and content-hash ids.

A :class:`PromptSet` is an immutable, ordered collection of :class:`Prompt` items. Build one with
:func:`load_prompts` from a bundled set name (``"quickstart"``), a ``.csv`` / ``.jsonl`` / ``.json`` file,
a pandas DataFrame, a list of strings or dicts, or another PromptSet::

    ps = load_prompts("quickstart")                                   # bundled, 6 categories
    ps = load_prompts("my.csv", template="Summarize:\\n{doc}")          # rendered per row
    ps = load_prompts(["What is 2+2?", "Name a prime above 100."])   # quick ad-hoc set

Every prompt's id is a content hash (:func:`prompt_id_for`), so the same text gets the same id in every
run, file and process: results recorded under it can be joined across runs.

Errors are :class:`~llmlab.errors.PromptSetError` (a ``ValueError``) whose message names the file, the line
or row, and the column or template variable at fault.

Rows may also carry a conversation (``messages``, OpenAI chat format), a ``response_format`` (JSON Schema),
``tools`` / ``tool_choice`` and images: see :mod:`llmlab.prompts.conversations`.

The package: :mod:`~llmlab.prompts.templates` (``{var}`` rendering), :mod:`~llmlab.prompts.sets` (``Prompt``,
``PromptSet``, ids), :mod:`~llmlab.prompts.readers` (files, frames, lists), :mod:`~llmlab.prompts.conversations`
(messages, structured output, tools, images, transcripts), :mod:`~llmlab.prompts.loading` (``load_prompts``).
"""

from __future__ import annotations

from llmlab.prompts.conversations import parse_transcript
from llmlab.prompts.loading import load_prompts
from llmlab.prompts.readers import bundled_prompt_sets
from llmlab.prompts.sets import Prompt, PromptSet, prompt_id_for
from llmlab.prompts.templates import render, template_variables
from llmlab.settings import datasets_dir

__all__ = [
    "Prompt",
    "PromptSet",
    "bundled_prompt_sets",
    "datasets_dir",
    "load_prompts",
    "parse_transcript",
    "prompt_id_for",
    "render",
    "template_variables",
]
