"""Negative log-likelihoods of Galaxy Zoo vote counts, as TensorFlow functions and Keras losses.

Two likelihoods are offered:

* **Binomial** (Walmsley et al. 2020, "W+20"): one binary question; a network predicts the
  probability ρ that a volunteer gives one answer, and the k of n volunteers who did are
  binomially distributed.
* **Dirichlet-multinomial** (Zoobot / GZ DECaLS, Walmsley et al. 2022): for every question of the
  decision tree the network predicts Dirichlet concentrations α over the answers, and the observed
  votes are Dirichlet-multinomial. Questions are treated as independent given α, so the per-galaxy
  log-likelihood is the sum over questions; a question nobody was asked adds nothing.

The Keras loss and metric classes store the decision tree in their config (see
:func:`schema_to_config`), so compiled models reload with ``keras.models.load_model`` once
``zooflow.losses`` is imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from zooflow.schema import Schema, load_schema, schema_from_dict

# Probabilities are clipped to [eps, 1 - eps] before taking logs. 1e-7 is representable next to 1
# in float32 (spacing 6e-8), so log(1 - p) stays finite, and costs at most -log(1e-7) ≈ 16.1 nats.
BINOMIAL_EPSILON = 1e-7

SchemaLike = Schema | str | Path | dict[str, Any]


# --- schema (de)serialisation ------------------------------------------------------------------
def schema_to_config(schema: Schema) -> dict[str, Any]:
    """The question structure of ``schema`` as plain JSON-able data (for Keras ``get_config``).

    The explicit structure (rather than just the tree's name) is stored so that a user's own YAML
    tree reloads even when the file has moved. ``external_columns`` mappings are not kept: losses
    do not need them.
    """
    return schema.to_dict(external_columns=False)


def schema_from_config(config: dict[str, Any]) -> Schema:
    """Inverse of :func:`schema_to_config`."""
    return schema_from_dict(config, "a model's serialised decision tree")


def as_schema(schema: SchemaLike) -> Schema:
    """Accept a :class:`Schema`, a built-in tree name / YAML path, or a serialised schema dict."""
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, dict):
        return schema_from_config(schema)
    if isinstance(schema, str | Path):
        return load_schema(schema)
    raise TypeError(f"expected a Schema, tree name, YAML path or schema dict, got {type(schema)}")


# --- plain functions ---------------------------------------------------------------------------
def _float_tensor(x: Any, dtype: tf.DType | None = None) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if dtype is not None:
        return tf.cast(x, dtype)
    return x if x.dtype.is_floating else tf.cast(x, tf.float32)


def _check_answer_axis(x: tf.Tensor, schema: Schema, what: str) -> None:
    width = x.shape[-1] if x.shape.rank else None
    if x.shape.rank != 2 or (width is not None and width != schema.n_answers):
        raise ValueError(
            f"{what} must be (galaxies, {schema.n_answers}) for tree {schema.name!r} "
            f"(one column per answer, in schema.label_cols order); got shape {tuple(x.shape)}"
        )


def binomial_nll(k: Any, n: Any, p: Any) -> tf.Tensor:
    """Binomial negative log-likelihood of k successes in n trials, without the log C(n, k) term.

    ``-[k log p + (n - k) log(1 - p)]``, element-wise (W+20 eq. 1). ``p`` is clipped to
    ``[BINOMIAL_EPSILON, 1 - BINOMIAL_EPSILON]`` first, so p = 0 or 1 gives a large but finite
    loss; the clip stops the gradient only for predictions already beyond it. With n = 0 (question
    not asked) the loss and its gradient are 0.
    """
    p = _float_tensor(p)
    k = _float_tensor(k, p.dtype)
    n = _float_tensor(n, p.dtype)
    p = tf.clip_by_value(p, BINOMIAL_EPSILON, 1.0 - BINOMIAL_EPSILON)
    return -(k * tf.math.log(p) + (n - k) * tf.math.log1p(-p))


def per_question_dirichlet_multinomial_nll(
    votes: Any, concentrations: Any, schema: Schema
) -> tf.Tensor:
    """Dirichlet-multinomial negative log-likelihood of every question: (galaxies, questions).

    For question q with answers a ∈ s_q, votes x_a, n_q = Σ_a x_a and concentrations α_a::

        log DM_q = lgamma(n_q + 1) + lgamma(Σα) − lgamma(n_q + Σα)
                   + Σ_a [lgamma(x_a + α_a) − lgamma(x_a + 1) − lgamma(α_a)]

    and the returned entry is −log DM_q (including the multinomial coefficient, so it equals
    ``-scipy.stats.dirichlet_multinomial.logpmf``). Questions with n_q = 0 are exactly 0 and pass
    no gradient to their concentrations: their inputs are swapped for harmless constants before
    any lgamma, and the result is masked with ``tf.where``.

    ``votes`` and ``concentrations`` are (galaxies, answers) in ``schema.label_cols`` order; the
    computation runs in the concentrations' float dtype (float32 if they are integers).
    """
    concentrations = _float_tensor(concentrations)
    votes = _float_tensor(votes, concentrations.dtype)
    _check_answer_axis(votes, schema, "votes")
    _check_answer_axis(concentrations, schema, "concentrations")
    owner = tf.constant(schema.answer_question_index, dtype=tf.int32)
    n_questions = schema.n_questions

    def sum_per_question(per_answer: tf.Tensor) -> tf.Tensor:
        # unsorted_segment_sum reduces the leading axis and compiles under XLA.
        summed = tf.math.unsorted_segment_sum(tf.transpose(per_answer), owner, n_questions)
        return tf.transpose(summed)

    totals = sum_per_question(votes)
    asked = totals > 0
    asked_answers = tf.gather(asked, owner, axis=1)
    # Safe branch: unasked answers see x = 0, α = 1 so nothing below can be NaN or leak gradient.
    safe_votes = tf.where(asked_answers, votes, tf.zeros_like(votes))
    safe_alpha = tf.where(asked_answers, concentrations, tf.ones_like(concentrations))

    alpha_totals = sum_per_question(safe_alpha)
    answer_terms = (
        tf.math.lgamma(safe_votes + safe_alpha)
        - tf.math.lgamma(safe_votes + 1.0)
        - tf.math.lgamma(safe_alpha)
    )
    log_dm = (
        tf.math.lgamma(totals + 1.0)
        + tf.math.lgamma(alpha_totals)
        - tf.math.lgamma(totals + alpha_totals)
        + sum_per_question(answer_terms)
    )
    return tf.where(asked, -log_dm, tf.zeros_like(log_dm))


def dirichlet_multinomial_nll(votes: Any, concentrations: Any, schema: Schema) -> tf.Tensor:
    """Per-galaxy loss −Σ_q log DM_q over the questions that were asked: shape (galaxies,)."""
    return tf.reduce_sum(
        per_question_dirichlet_multinomial_nll(votes, concentrations, schema), axis=1
    )


# --- Keras losses ------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="zooflow")
class DirichletMultinomialLoss(keras.losses.Loss):
    """Keras loss: y_true = votes (batch, answers), y_pred = concentrations α (batch, answers).

    Per galaxy :func:`dirichlet_multinomial_nll`; the default reduction is the batch mean.
    """

    def __init__(
        self,
        schema: SchemaLike,
        name: str = "dirichlet_multinomial",
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.schema = as_schema(schema)

    def call(self, y_true: Any, y_pred: Any) -> tf.Tensor:
        return dirichlet_multinomial_nll(y_true, y_pred, self.schema)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schema": schema_to_config(self.schema)}


@keras.saving.register_keras_serializable(package="zooflow")
class BinomialLoss(keras.losses.Loss):
    """Keras loss for one answer (W+20): y_true = full votes (batch, answers), y_pred = ρ (batch, 1).

    k = votes[:, answer_index] and n = total votes of that answer's question; per galaxy
    :func:`binomial_nll`; the default reduction is the batch mean. ``answer`` is a column index
    or a label column name of ``schema``.
    """

    def __init__(
        self,
        answer_index: int | str,
        schema: SchemaLike,
        name: str = "binomial",
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.schema = as_schema(schema)
        if isinstance(answer_index, str):
            if answer_index not in self.schema.label_cols:
                raise ValueError(
                    f"tree {self.schema.name!r} has no answer column {answer_index!r}; "
                    f"it has {self.schema.label_cols}"
                )
            answer_index = self.schema.label_cols.index(answer_index)
        if not 0 <= int(answer_index) < self.schema.n_answers:
            raise ValueError(
                f"answer_index {answer_index} is outside tree {self.schema.name!r}'s "
                f"{self.schema.n_answers} answers"
            )
        self.answer_index = int(answer_index)
        self.question = self.schema.questions[
            int(self.schema.answer_question_index[self.answer_index])
        ]

    def call(self, y_true: Any, y_pred: Any) -> tf.Tensor:
        y_pred = _float_tensor(y_pred)
        votes = _float_tensor(y_true, y_pred.dtype)
        _check_answer_axis(votes, self.schema, "votes")
        if y_pred.shape.rank == 2:
            if y_pred.shape[-1] not in (None, 1):
                raise ValueError(f"binomial y_pred must be (batch, 1); got {tuple(y_pred.shape)}")
            y_pred = y_pred[:, 0]
        k = votes[:, self.answer_index]
        n = tf.reduce_sum(votes[:, self.question.indices], axis=1)
        return binomial_nll(k, n, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "answer_index": self.answer_index,
            "schema": schema_to_config(self.schema),
        }


# --- per-question metrics ----------------------------------------------------------------------
def metric_name(question: str, prefix: str = "loss_") -> str:
    """``loss_{question}`` with characters TensorBoard summary names reject replaced by ``_``."""
    return prefix + re.sub(r"[^A-Za-z0-9_.\-]", "_", question)


@keras.saving.register_keras_serializable(package="zooflow")
class QuestionLosses(keras.metrics.Metric):
    """Running mean over galaxies of every question's Dirichlet-multinomial NLL, in one metric.

    ``result()`` is a dict ``{loss_{question}: value}``, which Keras logs as one column per
    question (``loss_bar``, ``val_loss_bar``, ...). Galaxies not asked a question count as 0, so
    the values add up to the :class:`DirichletMultinomialLoss` of the same batches. One metric
    rather than one per question because each must evaluate the whole tree's likelihood: ten
    separate metrics halved training throughput on CPU.
    """

    def __init__(
        self, schema: SchemaLike, name: str = "question_losses", dtype: Any = None
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.schema = as_schema(schema)
        self.result_names = [metric_name(q) for q in self.schema.question_names]
        self.totals = self.add_variable(
            shape=(self.schema.n_questions,), initializer="zeros", name="totals"
        )
        self.weight_total = self.add_variable(shape=(), initializer="zeros", name="weight_total")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        per_question = per_question_dirichlet_multinomial_nll(y_true, y_pred, self.schema)
        per_question = tf.cast(per_question, self.totals.dtype)
        if sample_weight is None:
            weights = tf.ones_like(per_question[:, 0])
        else:
            weights = tf.reshape(tf.cast(sample_weight, self.totals.dtype), [-1])
        self.totals.assign_add(tf.reduce_sum(per_question * weights[:, None], axis=0))
        self.weight_total.assign_add(tf.reduce_sum(weights))

    def result(self) -> dict[str, tf.Tensor]:
        means = tf.math.divide_no_nan(self.totals, self.weight_total)
        return {name: means[i] for i, name in enumerate(self.result_names)}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "schema": schema_to_config(self.schema)}


def per_question_metrics(schema: SchemaLike) -> list[QuestionLosses]:
    """The metrics that log each question's loss as ``loss_{question}`` (one :class:`QuestionLosses`)."""
    return [QuestionLosses(schema)]


# --- registry ----------------------------------------------------------------------------------
LOSSES: dict[str, Callable[..., keras.losses.Loss]] = {
    "dirichlet_multinomial": DirichletMultinomialLoss,
    "binomial": BinomialLoss,
}


def build_loss(name: str, schema: SchemaLike, **kwargs: Any) -> keras.losses.Loss:
    """Loss by registry name; ``binomial`` also needs ``answer_index`` (index or column name)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name](schema=schema, **kwargs)
