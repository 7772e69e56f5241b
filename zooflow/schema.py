"""The Galaxy Zoo decision tree as one object: columns, question slices, parents and P(asked).

A tree is a small YAML file: questions in order, each with its answers in order and the answer
(``{question}_{answer}``) that leads to it. Everything downstream takes a :class:`Schema` rather
than re-deriving column names from strings.

The workflow resolves the tree once (:func:`write_resolved_tree`, ``results/data/tree.yaml``):
the configured tree with its ``question_suffix:`` written in, so that every step loads the same
schema from one file with ``load_schema(path)`` and a changed suffix reruns what it affects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zooflow.trees import BUILTIN_TREES

TOTAL_VOTES_SUFFIX = "_total-votes"

log = logging.getLogger(__name__)


class SchemaError(ValueError):
    """A decision-tree file that does not describe a valid tree."""


@dataclass(frozen=True)
class Question:
    name: str
    answers: tuple[str, ...]
    parent: str | None  # logical `{question}_{answer}` that leads here; None for a root question
    start: int  # index of the first answer in `Schema.label_cols`

    @property
    def stop(self) -> int:
        return self.start + len(self.answers)

    @property
    def indices(self) -> slice:
        return slice(self.start, self.stop)


@dataclass(frozen=True)
class Schema:
    """A decision tree with a column naming convention.

    ``question_suffix`` is the per-campaign suffix Zoobot appends to question names
    (``smooth-or-featured-dr5_smooth``); empty by default.
    """

    name: str
    questions: tuple[Question, ...]
    question_suffix: str = ""
    external_columns: dict[str, dict[str, str]] = field(default_factory=dict, compare=False)

    # --- naming -------------------------------------------------------------------------
    def column(self, question: str, answer: str) -> str:
        return f"{question}{self.question_suffix}_{answer}"

    def total_column(self, question: str) -> str:
        return f"{question}{self.question_suffix}{TOTAL_VOTES_SUFFIX}"

    @cached_property
    def label_cols(self) -> list[str]:
        """Vote-count columns, question by question, answers in tree order."""
        return [self.column(q.name, a) for q in self.questions for a in q.answers]

    @cached_property
    def total_cols(self) -> list[str]:
        return [self.total_column(q.name) for q in self.questions]

    @property
    def question_names(self) -> list[str]:
        return [q.name for q in self.questions]

    @property
    def n_answers(self) -> int:
        return len(self.label_cols)

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    def to_dict(self, *, external_columns: bool = True) -> dict[str, Any]:
        """The tree as plain data (YAML / JSON): name, suffix, questions with their parents,
        and, unless ``external_columns`` is False, the tree's column mappings;
        :func:`schema_from_dict` reads it back."""
        data: dict[str, Any] = {
            "name": self.name,
            "question_suffix": self.question_suffix,
            "questions": [
                {"name": q.name, "answers": list(q.answers)}
                | ({} if q.parent is None else {"parent": q.parent})
                for q in self.questions
            ],
        }
        if external_columns and self.external_columns:
            data["external_columns"] = self.external_columns
        return data

    def question(self, name: str) -> Question:
        for q in self.questions:
            if q.name == name:
                return q
        raise KeyError(f"tree {self.name!r} has no question {name!r}; it has {self.question_names}")

    @cached_property
    def question_index_groups(self) -> list[tuple[int, int]]:
        """(first, last) answer index of each question, inclusive, as Zoobot lists them."""
        return [(q.start, q.stop - 1) for q in self.questions]

    @cached_property
    def answer_question_index(self) -> np.ndarray:
        """For every answer column, the index of its question."""
        return np.concatenate(
            [np.full(len(q.answers), i, dtype=np.int64) for i, q in enumerate(self.questions)]
        )

    @cached_property
    def parent_index(self) -> list[int | None]:
        """Per question, the label-column index of the answer that leads to it (None for roots)."""
        logical = [f"{q.name}_{a}" for q in self.questions for a in q.answers]
        return [None if q.parent is None else logical.index(q.parent) for q in self.questions]

    def parent_column(self, question: str) -> str | None:
        idx = self.parent_index[self.question_names.index(question)]
        return None if idx is None else self.label_cols[idx]

    def external_mapping(self, name: str) -> dict[str, str]:
        """A shipped mapping from another table's columns to this schema's label columns."""
        if name not in self.external_columns:
            raise KeyError(
                f"tree {self.name!r} ships no column mapping {name!r}; "
                f"it has {sorted(self.external_columns)}"
            )
        logical = [f"{q.name}_{a}" for q in self.questions for a in q.answers]
        to_label = dict(zip(logical, self.label_cols, strict=True))
        return {src: to_label[dst] for src, dst in self.external_columns[name].items()}

    # --- arithmetic on vote arrays ------------------------------------------------------
    def question_totals(self, votes: np.ndarray) -> np.ndarray:
        """(galaxies, answers) counts -> (galaxies, questions) number of volunteers asked."""
        votes = np.asarray(votes, dtype=np.float64)
        return np.stack([votes[:, q.indices].sum(axis=1) for q in self.questions], axis=1)

    def vote_fractions(self, votes: np.ndarray) -> np.ndarray:
        """Counts -> fraction of each question's volunteers giving each answer.

        Questions nobody was asked get NaN: there is no fraction to speak of.
        """
        votes = np.asarray(votes, dtype=np.float64)
        totals = self.question_totals(votes)[:, self.answer_question_index]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, votes / totals, np.nan)

    def p_asked(self, fractions: np.ndarray) -> np.ndarray:
        """P(question asked) per galaxy: product of parent-answer fractions along the chain.

        ``fractions`` is (galaxies, answers), observed or predicted; NaN (never asked) counts as 0.
        Returns (galaxies, questions); root questions are 1.
        """
        fractions = np.nan_to_num(np.asarray(fractions, dtype=np.float64), nan=0.0)
        out = np.ones((fractions.shape[0], self.n_questions))
        # Trees list parents before children, so one pass in order resolves every chain.
        owner = self.answer_question_index
        for i, parent in enumerate(self.parent_index):
            if parent is not None:
                out[:, i] = out[:, owner[parent]] * fractions[:, parent]
        return out


def _tree_source(name_or_path: str | Path) -> tuple[str, str]:
    if str(name_or_path) in BUILTIN_TREES:
        text = resources.files("zooflow.trees").joinpath(f"{name_or_path}.yaml").read_text()
        return text, f"built-in tree {name_or_path!r}"
    path = Path(name_or_path)
    if not path.is_file():
        raise SchemaError(
            f"{str(name_or_path)!r} is neither a built-in tree ({', '.join(BUILTIN_TREES)}) nor "
            "an existing YAML file"
        )
    return path.read_text(), str(path)


def load_schema(name_or_path: str | Path, question_suffix: str | None = None) -> Schema:
    """Load a built-in tree (``gz2``, ``decals_dr5``) or a user's YAML tree.

    The question suffix is ``question_suffix`` when given, else the file's own
    ``question_suffix:`` key (a resolved tree has one, see :func:`write_resolved_tree`), else "".
    """
    text, where = _tree_source(name_or_path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or err
        raise SchemaError(f"{where}{line}: not valid YAML ({problem})") from None
    return schema_from_dict(raw, where, question_suffix, default_name=Path(str(name_or_path)).stem)


def schema_from_dict(
    raw: Any,
    where: str = "decision tree",
    question_suffix: str | None = None,
    *,
    default_name: str = "tree",
) -> Schema:
    """A checked :class:`Schema` from a tree's plain data (a YAML file's, or
    :meth:`Schema.to_dict`'s as stored in a model's configuration); ``where`` starts errors."""
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list):
        raise SchemaError(f"{where}: expected a mapping with a 'questions' list")
    questions: list[Question] = []
    seen_answers: set[str] = set()
    start = 0
    for n, entry in enumerate(raw["questions"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        answers = entry.get("answers") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}: question {n} has no name")
        if not isinstance(answers, list) or len(answers) < 2:
            raise SchemaError(f"{where}: question {name!r} needs a list of at least two answers")
        for a in answers:
            if not isinstance(a, str):
                raise SchemaError(
                    f"{where}: question {name!r} answer {a!r} is not a string "
                    "(quote yes/no: YAML reads them as booleans)"
                )
        parent = entry.get("parent")
        if parent is not None and parent not in seen_answers:
            raise SchemaError(
                f"{where}: question {name!r} has parent {parent!r}, which is not an answer "
                "of an earlier question"
            )
        if name in {q.name for q in questions}:
            raise SchemaError(f"{where}: question {name!r} appears twice")
        questions.append(Question(name, tuple(answers), parent, start))
        seen_answers.update(f"{name}_{a}" for a in answers)
        start += len(answers)
    if question_suffix is None:
        question_suffix = raw.get("question_suffix", "")
        if not isinstance(question_suffix, str):
            raise SchemaError(f"{where}: question_suffix {question_suffix!r} is not a string")
    return Schema(
        name=str(raw.get("name", default_name)),
        questions=tuple(questions),
        question_suffix=question_suffix,
        external_columns=dict(raw.get("external_columns") or {}),
    )


def write_resolved_tree(name_or_path: str | Path, question_suffix: str, out: str | Path) -> Schema:
    """Check the tree ``name_or_path`` and write it to ``out`` with ``question_suffix`` in it:
    ``load_schema(out)`` then gives the same schema (name, questions, suffix, column mappings)
    as ``load_schema(name_or_path, question_suffix)``, which it returns."""
    schema = load_schema(name_or_path, question_suffix)
    resolved = schema.to_dict()
    header = (
        f"# The decision tree in use, resolved from {name_or_path} with its question suffix\n"
        "# (written by the workflow: change schema.tree or schema.question_suffix, not this file).\n"
    )
    Path(out).write_text(
        header
        + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True, default_flow_style=None)
    )
    log.info(
        "tree %r: %d questions, %d answers, columns named like %r",
        schema.name,
        schema.n_questions,
        schema.n_answers,
        schema.label_cols[0],
    )
    return schema
