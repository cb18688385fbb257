"""Task kinds: classification, multiple choice and extractive QA, each a small adapter (tasks/base.py)
so that engine.loop.fine_tune, dynamics.record.DynamicsRecorder and phase 1 stay generic.

The kind is detected from the data (a `choices` list column: multiple choice; `context`, `question` and
SQuAD-style `answers` with `answer_start`: extractive QA; anything else: classification) or given with
`--task-type`; the scoring's manifest records it, so `export`, `train --subset` and `compare` follow.
"""
from __future__ import annotations

from ..config import CLASSIFICATION, TASK_TYPES
from .base import Encoded, Task, TaskData, as_list
from .classification import Classification
from .extractive_qa import ExtractiveQA
from .multiple_choice import CHOICES, MultipleChoice


TASKS: dict[str, Task] = {t.name: t for t in (Classification(), MultipleChoice(), ExtractiveQA())}


def get_task(name: str | None) -> Task:
    from ..errors import HpruneError

    if name is None:
        return TASKS[CLASSIFICATION]
    if name not in TASKS:
        raise HpruneError(f"unknown task type {name!r}; choose one of: {', '.join(TASK_TYPES)}")
    return TASKS[name]


def task_of(data) -> Task:
    """The adapter of a loaded dataset (LabelledData is classification)."""
    return get_task(getattr(data, "task_type", CLASSIFICATION))


def detect_task_type(frame) -> str:
    """multiple-choice when a `choices` column holds lists; extractive-qa when `context`, `question` and
    `answers` are there and the answers are SQuAD-style dicts; else classification."""
    first = frame.iloc[0] if len(frame) else None
    if first is None:
        return CLASSIFICATION
    if CHOICES in frame.columns and as_list(first[CHOICES]) is not None:
        return MultipleChoice.name
    if {"context", "question", "answers"} <= set(frame.columns):
        answers = first["answers"]
        if isinstance(answers, dict) and "answer_start" in answers:
            return ExtractiveQA.name
    return CLASSIFICATION


def load_task_data(source, *, task_type: str | None = None, text_column: str | None = None, pair_column: str | None = None,
                   label_column: str | None = None, label_names: list[str] | None = None):
    """Load a dataset of any kind from a path or rows in memory (data.tables.read_table): classification data
    comes back as data.load_data gives it (same checks, messages and fingerprint), multiple-choice and QA
    data as a TaskData."""
    from ..data import read_table, source_name
    from ..errors import HpruneError

    table = read_table(source)
    source = source_name(source)
    task = get_task(task_type or detect_task_type(table[0]))
    if task.name == CLASSIFICATION:
        return task.load(source, table=table, text_column=text_column, pair_column=pair_column, label_column=label_column,
                         label_names=label_names)
    given = [opt for opt, value in (("--text-column", text_column), ("--text-pair-column", pair_column)) if value]
    if given:
        raise HpruneError(f"{' and '.join(given)} apply to classification data; {task.name} data is read from fixed columns "
                          "(README: Task types)")
    if task.name == ExtractiveQA.name and label_column:
        raise HpruneError("--label-column applies to classification and multiple-choice data; extractive-qa answers are read from 'answers'")
    return task.load(source, table=table, label_column=label_column)


def as_task_data(data, *, like=None, **columns):
    """`data` loaded by load_task_data (`columns`: its keyword options), or as it is when loaded already;
    `like`: the training data, whose task kind and label map an evaluation set takes."""
    if hasattr(data, "fingerprint"):
        return data
    if like is not None:
        columns.update(task_type=task_of(like).name, label_names=like.label_names)
    return load_task_data(data, **columns)


__all__ = ["CLASSIFICATION", "TASKS", "TASK_TYPES", "Encoded", "Task", "TaskData", "as_task_data", "detect_task_type", "get_task",
           "load_task_data", "task_of"]
