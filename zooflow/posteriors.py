"""Posterior files without TensorFlow: Zoobot's HDF5 layout, gathering, per-galaxy summaries.

HDF5 layout: ``predictions`` (galaxy, answer, pass) float32 — Dirichlet concentrations, or ρ for
the binomial head; ``id_str``; ``votes`` (the catalogue's counts, for evaluation); ``label_cols``;
attrs ``head`` and ``passes``. Summaries give, per galaxy and answer, the mean predicted vote
fraction, two central 90% intervals and P(question asked):

* ``{answer}_probability_lo/_hi``: where the answer's *vote probability* lies, the fraction that
  infinitely many volunteers would settle on (the mixture over passes of the Dirichlet's
  Beta(α_a, Σα − α_a) marginal). On the mock survey it holds the true probability ~90% of the
  time; it is narrower than the scatter of the fractions a handful of volunteers produce.
* ``{answer}_observed_lo/_hi``: where the *observed fraction* k/N of the galaxy's own N
  volunteers (those who answered the question) should land: the same mixture pushed through the
  vote noise (Beta-binomial). NaN where nobody answered the question (an unlabelled galaxy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy.special import gammaln

from zooflow.atomic import atomic_path
from zooflow.schema import Schema

STRING = h5py.string_dtype("utf-8")
# What a network predicts per galaxy: Dirichlet concentrations for every answer of the tree, or
# one binomial probability (W+20). Every module that branches on the head checks against this.
HEADS = ("dirichlet", "binomial")


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(id_str, votes, predictions, attrs) from a predictions HDF5 file."""
    with h5py.File(path, "r") as f:
        ids = f["id_str"].asstr()[:]
        votes = f["votes"][:]
        predictions = f["predictions"][:]
        attrs = dict(f.attrs)
    return np.asarray(ids, dtype=str), votes, predictions, attrs


# --- predictive of the counts, and the temperatures that calibrate it ------------------------------


def count_pmf(n: np.ndarray, a: np.ndarray, b: np.ndarray | None, k_max: int) -> np.ndarray:
    """(G, T, k_max + 1) pmf of a count out of ``n`` (G,), one per sample.

    ``a``, ``b`` (G, T): Beta-binomial parameters (α_a, Σα − α_a); with ``b`` None, ``a`` holds
    binomial ρ. Computed in log space (scipy.special alone: scipy.stats would double the import
    time of every small step); mass above each galaxy's N is 0.
    """
    k = np.arange(k_max + 1)[None, None, :]
    n3 = np.asarray(n, dtype=np.float64)[:, None, None]
    valid = k <= n3
    kk = np.minimum(k, n3)
    log_choose = gammaln(n3 + 1) - gammaln(kk + 1) - gammaln(n3 - kk + 1)
    if b is None:
        rho = np.clip(np.asarray(a, dtype=np.float64), 1e-300, 1 - 1e-16)[:, :, None]
        log_pmf = log_choose + kk * np.log(rho) + (n3 - kk) * np.log1p(-rho)
    else:
        a3 = np.asarray(a, dtype=np.float64)[:, :, None]
        b3 = np.asarray(b, dtype=np.float64)[:, :, None]
        log_pmf = (
            log_choose
            + gammaln(kk + a3)
            + gammaln(n3 - kk + b3)
            - gammaln(n3 + a3 + b3)
            - gammaln(a3)
            - gammaln(b3)
            + gammaln(a3 + b3)
        )
    return np.where(valid, np.exp(log_pmf), 0.0)


def mixture_count_pmf(n: np.ndarray, a: np.ndarray, b: np.ndarray | None, k_max: int) -> np.ndarray:
    """(G, k_max + 1) pmf of a count out of ``n`` (G,), mixed over samples (:func:`count_pmf`)."""
    return count_pmf(n, a, b, k_max).mean(axis=1)


def apply_temperatures(
    concentrations: np.ndarray, schema: Schema, temperatures: dict[str, float]
) -> np.ndarray:
    """Concentrations (G, A, T) with every answer of question q divided by τ_q."""
    scale = np.ones(schema.n_answers)
    for q in schema.questions:
        scale[q.indices] = 1.0 / float(temperatures.get(q.name, 1.0))
    return (np.asarray(concentrations, dtype=np.float64) * scale[None, :, None]).astype(
        np.asarray(concentrations).dtype
    )


def read_temperatures(path: str | Path | None) -> dict[str, float]:
    """{question: τ} from a calibration file; {} (no calibration) for None."""
    if not path:
        return {}
    table = json.loads(Path(path).read_text())["temperatures"]
    return {question: float(entry["temperature"]) for question, entry in table.items()}


def gather_predictions(
    parts: Sequence[str | Path],
    out_path: str | Path,
    *,
    temperatures: dict[str, float] | None = None,
    schema: Schema | None = None,
    block: int = 4096,
) -> int:
    """Concatenate shard-group prediction files (written by parallel jobs) into one.

    ``temperatures`` ({question: τ}, with ``schema``) calibrates Dirichlet concentrations on the
    way (:func:`apply_temperatures`); the file's ``temperatures`` attribute
    records them (JSON), so the raw concentrations are τ times those stored.
    """

    count = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        for i, part in enumerate(parts):
            with h5py.File(part, "r") as f:
                n = f["id_str"].shape[0]
                if i == 0:
                    # Representations (``features``) travel with the samples when predicted.
                    names = [name for name in ("predictions", "votes", "features") if name in f]
                    for name in names:
                        ds = f[name]
                        out.create_dataset(
                            name,
                            shape=(0, *ds.shape[1:]),
                            maxshape=(None, *ds.shape[1:]),
                            dtype=ds.dtype,
                            chunks=ds.chunks,
                            compression=ds.compression,
                        )
                    out.create_dataset("id_str", shape=(0,), maxshape=(None,), dtype=STRING)
                    out.create_dataset("label_cols", data=f["label_cols"][:], dtype=STRING)
                    out.attrs.update(dict(f.attrs))
                    calibrate = (
                        bool(temperatures)
                        and schema is not None
                        and str(f.attrs.get("head", "dirichlet")) == "dirichlet"
                    )
                    out.attrs["temperatures"] = json.dumps(temperatures if calibrate else {})
                for name in (*names, "id_str"):
                    out[name].resize(count + n, axis=0)
                    # Block by block, so memory stays flat however large the catalogue.
                    for start in range(0, n, block):
                        stop = min(start + block, n)
                        values = f[name][start:stop]
                        if name == "predictions" and calibrate:
                            values = apply_temperatures(values, schema, temperatures)
                        out[name][count + start : count + stop] = values
                count += n
    return count


def mean_vote_fractions(concentrations: np.ndarray, schema: Schema) -> np.ndarray:
    """(G, A, T) concentrations -> (G, A) expected vote fraction α_a / Σ_q α, mean over passes."""
    fractions = np.empty_like(concentrations, dtype=np.float64)
    for q in schema.questions:
        block = concentrations[:, q.indices, :].astype(np.float64)
        fractions[:, q.indices, :] = block / block.sum(axis=1, keepdims=True)
    return fractions.mean(axis=2)


def _observed_interval(
    k_totals: np.ndarray, a: np.ndarray, b: np.ndarray | None, interval: float
) -> tuple[np.ndarray, np.ndarray]:
    """Central interval of k/N under the mixture predictive of the count, per galaxy; NaN at N=0.

    Discrete quantiles: lo is the smallest k with P(count <= k) >= (1 - interval)/2, hi the
    smallest with P >= 1 - (1 - interval)/2, so the interval holds at least ``interval``.
    """
    lo = np.full(len(k_totals), np.nan)
    hi = np.full(len(k_totals), np.nan)
    asked = np.flatnonzero(k_totals > 0)
    if len(asked):
        n = k_totals[asked]
        cdf = np.cumsum(
            mixture_count_pmf(n, a[asked], None if b is None else b[asked], int(n.max())), axis=1
        )
        tail = (1 - interval) / 2
        lo[asked] = (cdf < tail - 1e-12).sum(axis=1) / n
        hi[asked] = np.minimum((cdf < 1 - tail - 1e-12).sum(axis=1), n) / n
    return lo, hi


def summarise_predictions(
    ids: np.ndarray,
    predictions: np.ndarray,
    schema: Schema,
    *,
    votes: np.ndarray | None = None,
    head: str = "dirichlet",
    binomial_answer: str | None = None,
    interval: float = 0.9,
    draws_per_pass: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Per galaxy and answer: mean predicted vote fraction, the vote-probability and the
    observed-fraction intervals (module docstring), and P(asked).

    The vote-probability interval comes from ``draws_per_pass`` Beta draws per pass with a fixed
    seed (for the binomial head, the per-pass ρ themselves); the observed-fraction interval is
    exact, for the number of volunteers who answered the question in ``votes`` (None: NaN).
    """
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2
    no_votes = votes is None
    votes = np.zeros((len(ids), schema.n_answers)) if no_votes else np.asarray(votes)
    totals = schema.question_totals(votes).astype(np.int64)
    if head == "binomial":
        # Explicit sizes: an empty split has no -1 to infer.
        rho = predictions.reshape(len(ids), int(np.prod(predictions.shape[1:]))).astype(np.float64)
        col = binomial_answer or "rho"
        n = (
            totals[:, schema.answer_question_index[schema.label_cols.index(binomial_answer)]]
            if binomial_answer
            else np.zeros(len(ids), dtype=np.int64)
        )
        observed_lo, observed_hi = _observed_interval(n, rho, None, interval)
        return pd.DataFrame(
            {
                "id_str": ids,
                f"{col}_fraction": rho.mean(axis=1),
                f"{col}_probability_lo": np.quantile(rho, lo_q, axis=1),
                f"{col}_probability_hi": np.quantile(rho, hi_q, axis=1),
                f"{col}_observed_lo": observed_lo,
                f"{col}_observed_hi": observed_hi,
            }
        )
    mean = mean_vote_fractions(predictions, schema)
    alpha = predictions.astype(np.float64)
    question_totals = np.empty_like(alpha)
    for q in schema.questions:
        question_totals[:, q.indices, :] = alpha[:, q.indices, :].sum(axis=1, keepdims=True)
    rest = question_totals - alpha
    draws = rng.beta(
        np.broadcast_to(alpha[..., None], (*alpha.shape, draws_per_pass)),
        np.broadcast_to(rest[..., None], (*rest.shape, draws_per_pass)),
    ).reshape(len(ids), schema.n_answers, alpha.shape[2] * draws_per_pass)
    lo, hi = np.quantile(draws, [lo_q, hi_q], axis=2)
    p_asked = schema.p_asked(mean)
    columns: dict[str, np.ndarray] = {"id_str": ids}
    for i, col in enumerate(schema.label_cols):
        observed_lo, observed_hi = _observed_interval(
            totals[:, schema.answer_question_index[i]], alpha[:, i, :], rest[:, i, :], interval
        )
        columns[f"{col}_fraction"] = mean[:, i]
        columns[f"{col}_probability_lo"] = lo[:, i]
        columns[f"{col}_probability_hi"] = hi[:, i]
        columns[f"{col}_observed_lo"] = observed_lo
        columns[f"{col}_observed_hi"] = observed_hi
    for j, q in enumerate(schema.questions):
        columns[f"{q.name}{schema.question_suffix}_p_asked"] = p_asked[:, j]
    return pd.DataFrame(columns)


def write_summary(
    predictions_path: str | Path,
    out_path: str | Path,
    schema: Schema,
    *,
    binomial_answer: str | None = None,
    chunk: int = 512,
    seed: int = 0,
) -> None:
    """Summary parquet from a predictions file, chunk by chunk (memory flat in catalogue size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    with atomic_path(out_path) as tmp:
        with h5py.File(predictions_path, "r") as f:
            head = str(f.attrs["head"])
            n = f["id_str"].shape[0]
            for start in range(0, max(n, 1), chunk):
                ids = np.asarray(f["id_str"].asstr()[start : start + chunk], dtype=str)
                table = pa.Table.from_pandas(
                    summarise_predictions(
                        ids,
                        f["predictions"][start : start + chunk],
                        schema,
                        votes=f["votes"][start : start + chunk],
                        head=head,
                        binomial_answer=binomial_answer,
                        seed=seed + start,
                    ),
                    preserve_index=False,
                )
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        if writer is not None:
            writer.close()


def gather_and_summarise(
    parts: Sequence[str | Path],
    predictions_path: str | Path,
    summary_path: str | Path,
    schema: Schema,
    *,
    binomial_answer: str | None = None,
    calibration_path: str | Path | None = None,
    seed: int = 0,
) -> int:
    """Join shard-group predictions into one file, calibrated by the run's temperatures
    (``calibration_path``, see :mod:`zooflow.calibration`), and write its per-galaxy summary."""
    count = gather_predictions(
        parts,
        predictions_path,
        temperatures=read_temperatures(calibration_path),
        schema=schema,
    )
    write_summary(
        predictions_path, summary_path, schema, binomial_answer=binomial_answer, seed=seed
    )
    return count
