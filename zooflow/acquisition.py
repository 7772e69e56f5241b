"""Acquisition for active learning: which galaxies should volunteers label next?

Predictions arrive as T Monte-Carlo-dropout samples per galaxy (Walmsley et al. 2020, "W+20"):
binomial ρ (G, T) for one answer, or Dirichlet concentrations (G, A, T) for the whole tree.

* ``bald``: the mutual information between the model and the galaxy's votes. For the Dirichlet
  head by default the information gain of the galaxy's whole vote vector (``information="joint"``,
  :func:`zooflow.information.expected_information_gain`), with the number of volunteers reaching
  a question as random as it is; ``information="question_sum"`` keeps the earlier sum of
  per-question terms (the same function's ``estimator="question_sum"``). Binomial: exact
  (:func:`zooflow.bald.bald_binomial`).
* ``epig``: what a galaxy's votes would tell us about the votes of a sample of the pool (the
  galaxies we will predict) rather than about the model (:mod:`zooflow.predictive_information`).
* ``power_bald`` and ``power_epig``: BALD's or EPIG's batch drawn in proportion to the score
  (a varied batch rather than the top k); ``max_entropy``: the predictive entropy alone (it
  also favours galaxies that every sample agrees are ambiguous); ``random``.

Every acquisition function is registered by name in :data:`ACQUISITION_FUNCTIONS` and called
through :func:`acquire_scores`; :func:`top_k` turns scores into an ordered list of galaxy ids and
:func:`acquire` is the workflow's step (scores and acquisitions of one round, as CSV files). A
pool too large for one job is scored one prediction group at a time (:func:`score_part`, every
function but those in :data:`POOL_WIDE`) and :func:`acquire` ranks the parts together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.atomic import atomic_path
from zooflow.bald import (
    AcquisitionError,
    DirichletMultinomialTerms,
    bald_binomial,
    binomial_entropies,
    dirichlet_multinomial_entropies,
    question_weight_vector,
)
from zooflow.dirichlet_multinomial import (
    DEFAULT_DRAWS_PER_SAMPLE,
    DEFAULT_EXACT_OUTCOME_LIMIT,
    n_vote_compositions,
    vote_compositions,
)
from zooflow.ids import read_csv_with_ids
from zooflow.information import (
    InformationEstimate,
    counted_questions,
    expected_information_gain,
    information_terms,
)
from zooflow.posteriors import HEADS, apply_temperatures, read_predictions, read_temperatures
from zooflow.predictive_information import (
    epig,
    epig_binomial,
    expected_predictive_information_gain,
)
from zooflow.schema import Schema

log = logging.getLogger(__name__)

DEFAULT_EPIG_TARGETS = 200

__all__ = [
    "ACQUISITION_FUNCTIONS",
    "POOL_WIDE",
    "AcquisitionError",
    "AcquisitionResult",
    "DirichletMultinomialTerms",
    "acquire",
    "acquire_scores",
    "bald_binomial",
    "binomial_entropies",
    "dirichlet_multinomial_entropies",
    "epig",
    "epig_binomial",
    "expected_information_gain",
    "expected_predictive_information_gain",
    "n_vote_compositions",
    "question_weight_vector",
    "register",
    "score_part",
    "top_k",
    "vote_compositions",
]


# --- registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcquisitionResult:
    scores: np.ndarray  # (G,), higher = acquire first
    per_question: np.ndarray | None  # (G, Q) per-question term (MI or entropy); None for random
    # (G,) combined BALD mutual information, for strategies that rank by MI, perhaps with noise
    # (power BALD's scores are ln MI + Gumbel noise: a random order, not a measure of information).
    mutual_information: np.ndarray | None = None


@dataclass(frozen=True)
class AcquisitionOptions:
    """Settings every registered acquisition function receives (it uses those it needs)."""

    head: str = "dirichlet"
    expected_votes: float = 40.0
    question_weights: Mapping[str, float] | None = None
    seed: int = 0
    binomial_votes: int = 40
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT
    information: str = "joint"
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE
    epig_targets: int = DEFAULT_EPIG_TARGETS


AcquisitionFunction = Callable[[np.ndarray, Schema | None, AcquisitionOptions], AcquisitionResult]
ACQUISITION_FUNCTIONS: dict[str, AcquisitionFunction] = {}
# What each function's score means, in a reader's words (the explorer shows it beside the scores).
SCORE_MEANINGS: dict[str, str] = {}
# Functions whose score of a galaxy depends on other galaxies' predictions (EPIG's targets are a
# sample of the pool): they score the whole pool at once. Every other one scores each galaxy from
# its own predictions, so a pool can be scored one shard group at a time (score_part).
POOL_WIDE: set[str] = set()


def register(
    name: str, meaning: str | None = None, *, pool_wide: bool = False
) -> Callable[[AcquisitionFunction], AcquisitionFunction]:
    """Decorator adding ``fn(predictions, schema, options) -> AcquisitionResult`` by name, with
    what its score means to a reader (default: "the {name} acquisition score"); ``pool_wide``
    when a galaxy's score depends on the other galaxies scored with it."""

    def add(fn: AcquisitionFunction) -> AcquisitionFunction:
        if name in ACQUISITION_FUNCTIONS:
            raise AcquisitionError(f"an acquisition function named {name!r} is already registered")
        ACQUISITION_FUNCTIONS[name] = fn
        SCORE_MEANINGS[name] = meaning or f"the {name} acquisition score"
        if pool_wide:
            POOL_WIDE.add(name)
        return fn

    return add


def _information(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> InformationEstimate:
    """The Dirichlet head's BALD terms through the one entry point, with the round's settings."""
    if schema is None:
        raise AcquisitionError("the Dirichlet head needs the decision-tree schema")
    return information_terms(
        predictions,
        schema,
        int(round(options.expected_votes)),
        rng=np.random.default_rng([options.seed, 1]),
        estimator=options.information,
        question_weights=options.question_weights,
        exact_outcome_limit=options.exact_outcome_limit,
        draws_per_sample=options.draws_per_sample,
    )


def _question_terms(
    predictions: np.ndarray, schema: Schema, estimate: InformationEstimate, options
) -> DirichletMultinomialTerms:
    """Per-question terms for reading (the acquisitions table): the question_sum estimator's
    own, or computed alongside the joint score."""
    if estimate.question_terms is not None:
        return estimate.question_terms
    return dirichlet_multinomial_entropies(
        predictions,
        schema,
        int(round(options.expected_votes)),
        exact_outcome_limit=options.exact_outcome_limit,
        draws_per_sample=options.draws_per_sample,
        seed=options.seed,
    )


@register("bald", "mutual information between the galaxy's votes and the model (BALD)")
def _bald(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Mutual information between votes and model parameters (see module docstring).

    Per-question terms (N_q = round(N · P(asked))) are returned alongside for reading; the score
    is the joint information of the whole vote vector unless ``information="question_sum"``.
    """
    if options.head == "binomial":
        mutual_information = bald_binomial(predictions, options.binomial_votes)
        return AcquisitionResult(
            mutual_information, mutual_information[:, None], mutual_information
        )
    estimate = _information(predictions, schema, options)
    per_question = _question_terms(predictions, schema, estimate, options)
    score = estimate.mutual_information
    return AcquisitionResult(score, per_question.mutual_information, score)


@register(
    "power_bald", "log mutual information plus Gumbel noise: BALD's batch drawn in proportion"
)
def _power_bald(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """BALD made stochastic: the top k of these scores are a draw without replacement ∝ MI.

    Top-k BALD fills a batch with near-copies of one kind of galaxy (their MI is high for the
    same reason, and labelling one would lower the others'). Power acquisition (Kirsch et al.
    2023, "Stochastic Batch Acquisition") samples the batch with probability ∝ MI instead, via
    the Gumbel-top-k trick: score = ln MI + Gumbel noise from ``numpy.random.default_rng(seed)``.
    Per-question and combined MI are returned unchanged.
    """
    bald = _bald(predictions, schema, options)
    scores = _gumbel_top_k_scores(bald.scores, np.random.default_rng(options.seed))
    return AcquisitionResult(scores, bald.per_question, bald.scores)


@register("max_entropy", "entropy of the predicted votes")
def _max_entropy(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Entropy of the ensemble predictive, H[mean_t p_t], of the votes (joint, or summed over
    questions like BALD's ``question_sum``)."""
    if options.head == "binomial":
        predictive, _ = binomial_entropies(predictions, options.binomial_votes)
        return AcquisitionResult(predictive, predictive[:, None])
    estimate = _information(predictions, schema, options)
    per_question = _question_terms(predictions, schema, estimate, options)
    return AcquisitionResult(estimate.predictive_entropy, per_question.predictive_entropy)


@register(
    "epig",
    "what its votes would tell about the predictions for the survey's galaxies (EPIG)",
    pool_wide=True,
)
def _epig(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Expected predictive information gain about the votes of ``epig_targets`` pool galaxies.

    The targets are a seeded random sample of the galaxies being scored (the waiting pool stands
    for the survey the model will predict); never the test set, which nothing may learn from.
    """
    n_galaxies = np.shape(predictions)[0]
    if options.epig_targets < 1:
        raise AcquisitionError(f"epig_targets must be >= 1; got {options.epig_targets}")
    rng = np.random.default_rng([options.seed, 2])
    targets = np.sort(
        rng.choice(n_galaxies, size=min(options.epig_targets, n_galaxies), replace=False)
    )
    if options.head == "binomial":
        rho = np.asarray(predictions).reshape(n_galaxies, -1)
        value = epig_binomial(
            rho,
            rho[targets],
            options.binomial_votes,
            rng,
            draws_per_sample=options.draws_per_sample,
        )
        return AcquisitionResult(value, None)
    if schema is None:
        raise AcquisitionError("the Dirichlet head needs the decision-tree schema")
    value = expected_predictive_information_gain(
        predictions,
        predictions[targets],
        schema,
        int(round(options.expected_votes)),
        rng,
        questions=counted_questions(schema, options.question_weights),
        draws_per_sample=options.draws_per_sample,
    ).epig
    return AcquisitionResult(value, None)


def _gumbel_top_k_scores(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scores whose top k are a draw of k galaxies without replacement, each in proportion to
    its value (the Gumbel-top-k trick): ln value + Gumbel noise from ``rng``."""
    # Information is >= 0 exactly; Monte-Carlo terms can dip just below, and ln 0 would tie those
    # at -inf.
    log_value = np.log(np.maximum(values, np.finfo(np.float64).tiny))
    return log_value + rng.gumbel(size=log_value.shape)


@register(
    "power_epig",
    "log EPIG plus Gumbel noise: EPIG's batch drawn in proportion",
    pool_wide=True,
)
def _power_epig(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """EPIG made stochastic, as ``power_bald`` makes BALD: the top k of these scores are a draw
    without replacement in proportion to EPIG (Kirsch et al. 2023). EPIG alone fills a round
    with the featured galaxies whose votes inform the most predictions, near-copies of each
    other; the draw keeps EPIG's preference and varies the batch. The noise comes from
    ``numpy.random.default_rng([seed, 3])``, apart from the draw of EPIG's targets."""
    value = _epig(predictions, schema, options).scores
    return AcquisitionResult(
        _gumbel_top_k_scores(value, np.random.default_rng([options.seed, 3])), None
    )


@register("random", "a uniform random draw (the baseline)")
def _random(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Uniform scores in [0, 1) from ``numpy.random.default_rng(seed)``: a random order."""
    n_galaxies = np.shape(predictions)[0]
    return AcquisitionResult(np.random.default_rng(options.seed).random(n_galaxies), None)


def acquire_scores(
    name: str,
    predictions: np.ndarray,
    schema: Schema | None = None,
    *,
    head: str = "dirichlet",
    expected_votes: float = 40,
    question_weights: Mapping[str, float] | None = None,
    seed: int = 0,
    binomial_votes: int = 40,
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT,
    information: str = "joint",
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
    epig_targets: int = DEFAULT_EPIG_TARGETS,
) -> AcquisitionResult:
    """Score galaxies with the acquisition function registered as ``name``.

    ``predictions``: Dirichlet head (G, A, T) concentrations in ``schema.label_cols`` order;
    binomial head (G, T) or (G, 1, T) ρ samples, scored with ``binomial_votes`` votes.
    ``information`` picks BALD's estimator for the Dirichlet head (``joint`` or
    ``question_sum``); ``draws_per_sample`` sets the Monte-Carlo draws of every estimator and
    ``epig_targets`` how many pool galaxies EPIG predicts.
    """
    if name not in ACQUISITION_FUNCTIONS:
        raise AcquisitionError(
            f"unknown acquisition function {name!r}; choose from {sorted(ACQUISITION_FUNCTIONS)}"
        )
    if head not in HEADS:
        raise AcquisitionError(f"unknown head {head!r}; choose from {list(HEADS)}")
    if head == "dirichlet" and schema is not None:
        question_weight_vector(schema, question_weights)  # fail early on a misspelt question
    options = AcquisitionOptions(
        head=head,
        expected_votes=expected_votes,
        question_weights=question_weights,
        seed=seed,
        binomial_votes=binomial_votes,
        exact_outcome_limit=exact_outcome_limit,
        information=information,
        draws_per_sample=draws_per_sample,
        epig_targets=epig_targets,
    )
    result = ACQUISITION_FUNCTIONS[name](np.asarray(predictions), schema, options)
    if np.shape(result.scores) != (np.shape(predictions)[0],):
        raise AcquisitionError(
            f"acquisition function {name!r} returned scores of shape {np.shape(result.scores)} "
            f"for {np.shape(predictions)[0]} galaxies"
        )
    return result


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` ids with the highest scores, best first; equal scores go in ascending id order.

    Deterministic whatever the input order. Fewer than ``k`` candidates returns them all.
    """
    ids = np.asarray(ids)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 1 or ids.shape != scores.shape:
        raise AcquisitionError(
            f"ids and scores must be 1-D and the same length; got {ids.shape} and {scores.shape}"
        )
    if k < 0:
        raise AcquisitionError(f"k must be >= 0; got {k}")
    if np.isnan(scores).any():
        row = int(np.flatnonzero(np.isnan(scores))[0])
        raise AcquisitionError(f"score of galaxy {ids[row]!r} (row {row}) is NaN")
    unique_ids, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise AcquisitionError(f"ids must be unique; {unique_ids[counts > 1][:5].tolist()} repeat")
    by_id = np.argsort(ids, kind="stable")
    order = by_id[np.argsort(-scores[by_id], kind="stable")]
    return ids[order[:k]]


def _scores_table(ids: np.ndarray, result: AcquisitionResult, schema: Schema) -> pd.DataFrame:
    """id_str, score, mi (BALD strategies), mi_<question> (or mi_answer): one row per galaxy."""
    scores = pd.DataFrame({"id_str": ids, "score": result.scores})
    if result.mutual_information is not None:
        scores["mi"] = result.mutual_information
    if result.per_question is not None:
        names = (
            schema.question_names
            if result.per_question.shape[1] == schema.n_questions
            else ["answer"]
        )
        for j, name in enumerate(names):
            scores[f"mi_{name}"] = result.per_question[:, j]
    return scores


def _score_file(
    predictions_path: str | Path,
    schema: Schema,
    strategy: str,
    *,
    calibration_path: str | Path | None,
    seed: int,
    expected_votes: float,
    question_weights: dict[str, float] | None,
    information: str,
    draws_per_sample: int,
    epig_targets: int = DEFAULT_EPIG_TARGETS,
) -> pd.DataFrame:
    """The scores table of every galaxy in a predictions file, calibrated with the temperatures
    in ``calibration_path`` when given (a shard group's part is written before calibration)."""
    ids, _, predictions, attrs = read_predictions(predictions_path)
    head = str(attrs.get("head", "dirichlet"))
    # EPIG compares every galaxy with the targets under one network sample at a time.
    if strategy in POOL_WIDE and attrs.get("dropout_masks") != "shared":
        raise ValueError(
            f"{predictions_path}: EPIG needs samples that are the same network for every galaxy, "
            "which predictions written before zooflow shared dropout masks are not; "
            "rerun the prediction (snakemake --forcerun predict)"
        )
    temperatures = read_temperatures(calibration_path)
    if temperatures and head == "dirichlet":
        predictions = apply_temperatures(predictions, schema, temperatures)
    result = acquire_scores(
        strategy,
        predictions,
        schema,
        head=head,
        expected_votes=expected_votes,
        question_weights=question_weights or None,
        seed=seed,
        binomial_votes=int(round(expected_votes)),
        information=information,
        draws_per_sample=draws_per_sample,
        epig_targets=epig_targets,
    )
    return _scores_table(ids, result, schema)


def score_part(
    predictions_path: str | Path,
    schema: Schema,
    *,
    strategy: str,
    scores_out: str | Path,
    calibration_path: str | Path | None = None,
    group: int = 0,
    expected_votes: float = 40,
    question_weights: dict[str, float] | None = None,
    seed: int = 0,
    information: str = "joint",
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
) -> pd.DataFrame:
    """Score one shard group's galaxies (its part of the pool's predictions) into ``scores_out``
    (parquet: id_str, score, mi, mi_<question>), so that a pool of millions is scored by as many
    jobs as there are prediction groups; :func:`acquire` then ranks the parts together.

    Only strategies that score each galaxy from its own predictions can be split so (not those
    in :data:`POOL_WIDE`). The part is calibrated as the gathered file would be; random draws
    (Monte-Carlo terms, power BALD's noise, random's scores) come from ``(seed, group)``, so each
    group's are independent of the others' and the same on every rerun.
    """
    if strategy in POOL_WIDE:
        raise AcquisitionError(
            f"{strategy} scores each galaxy against a sample of the whole pool, so it cannot be "
            "scored one shard group at a time; acquire scores it from the gathered predictions"
        )
    scores = _score_file(
        predictions_path,
        schema,
        strategy,
        calibration_path=calibration_path,
        seed=_group_seed(seed, group),
        expected_votes=expected_votes,
        question_weights=question_weights,
        information=information,
        draws_per_sample=draws_per_sample,
    )
    with atomic_path(scores_out) as temporary:
        scores.to_parquet(temporary, index=False)
    log.info("%s scored %d galaxies of shard group %d", strategy, len(scores), group)
    return scores


def _group_seed(seed: int, group: int) -> int:
    """One seed per (round seed, shard group): distinct groups draw independent numbers."""
    return int(np.random.SeedSequence([seed, group]).generate_state(1)[0])


def acquire(
    predictions_path: str | Path | None,
    unlabelled_path: str | Path,
    catalogue_path: str | Path,
    schema: Schema,
    *,
    strategy: str,
    n_acquire: int,
    scores_out: str | Path,
    acquired_out: str | Path,
    expected_votes: float = 40,
    question_weights: dict[str, float] | None = None,
    seed: int = 0,
    information: str = "joint",
    draws_per_sample: int = 4,
    epig_targets: int = 200,
    score_parts: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """Score every waiting galaxy with the strategy and pick the top ``n_acquire``.

    Scores come from the pool's gathered predictions (``predictions_path``), or, when the pool
    was scored one shard group at a time (:func:`score_part`), from those ``score_parts``.
    Writes every score (``scores_out``: id_str, score, mi, mi_<question>) and the acquisitions
    (``acquired_out``: rank, id_str, file_loc, score, mi, mi_<question>), ready to upload as
    Zooniverse subjects in a real campaign. ``score`` is what the strategy ranks by; ``mi``, the
    combined BALD mutual information, is written for the BALD strategies (for ``power_bald`` the
    score is ln MI plus noise, so ``mi`` is the one to read as information). The head is the
    one the predictions file records.
    """
    if (predictions_path is None) == (not score_parts):
        raise ValueError("acquire takes the pool's predictions or its scored parts, not both")
    if score_parts:
        scores = pd.concat([pd.read_parquet(part) for part in score_parts], ignore_index=True)
        where = f"the scores of {len(score_parts)} shard groups"
    else:
        scores = _score_file(
            predictions_path,
            schema,
            strategy,
            calibration_path=None,  # the gathered file is calibrated already
            seed=seed,
            expected_votes=expected_votes,
            question_weights=question_weights,
            information=information,
            draws_per_sample=draws_per_sample,
            epig_targets=epig_targets,
        )
        where = str(predictions_path)
    ids = scores["id_str"].to_numpy(dtype=str)
    waiting = set(read_csv_with_ids(unlabelled_path)["id_str"])
    stray = sorted(set(ids) - waiting)
    if stray:
        raise ValueError(
            f"{where} hold galaxies that are not waiting in the pool, e.g. {stray[:3]}"
        )
    chosen = top_k(ids, scores["score"].to_numpy(), n_acquire)
    files = pd.read_parquet(catalogue_path, columns=["id_str", "file_loc"]).set_index("id_str")
    acquired = scores.set_index("id_str").loc[list(chosen)].reset_index()
    acquired.insert(0, "rank", range(1, len(acquired) + 1))
    acquired.insert(2, "file_loc", files.loc[acquired["id_str"], "file_loc"].to_numpy())
    scores.to_csv(scores_out, index=False)
    acquired.to_csv(acquired_out, index=False)
    log.info("%s acquired %d of %d waiting galaxies", strategy, len(acquired), len(ids))
    return acquired
