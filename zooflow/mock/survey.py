"""The mock survey end to end: latents, true answers, votes and images of every galaxy.

Writes ``images/{id_str}.png``, ``catalogue.csv`` (what training reads) and ``truth.parquet``
(true fractions, P(asked) and latent parameters, for evaluation only).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zooflow.mock.answers import check_schema, true_fractions
from zooflow.mock.config import MockSurveyConfig
from zooflow.mock.latents import sample_latents
from zooflow.mock.render import render_chunk
from zooflow.mock.visibility import visibility_terms
from zooflow.mock.votes import simulate_votes
from zooflow.runlog import Progress
from zooflow.schema import Schema


def galaxy_ids(n: int) -> list[str]:
    return [f"mock_{i:06d}" for i in range(n)]


def simulate_survey(
    out_dir: str | Path,
    schema: Schema,
    config: MockSurveyConfig,
    seed: int,
    threads: int = 1,
) -> None:
    """Render a mock survey into ``out_dir``: ``images/``, ``catalogue.csv``, ``truth.parquet``.

    ``catalogue.csv``: ``id_str``, ``file_loc`` (relative to ``images/``), the integer
    ``schema.label_cols`` and ``schema.total_cols``. ``truth.parquet``: ``id_str``,
    ``{label_col}_true_fraction`` (probability of the answer among volunteers asked),
    ``{question}{suffix}_true_p_asked`` and the latent and visibility parameters.
    ``threads`` worker processes render images; the outputs do not depend on it.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    seed, threads = int(seed), int(threads)
    check_schema(schema)
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    latents = sample_latents(config, seed)
    fractions = true_fractions(latents, schema, config)
    votes = simulate_votes(fractions, latents["n_volunteers"].to_numpy(), schema, seed)
    ids = galaxy_ids(config.n_galaxies)
    files = [f"{i}.png" for i in ids]

    _render_all(images_dir, config, seed, files, latents, threads)

    catalogue = pd.DataFrame({"id_str": ids, "file_loc": files})
    catalogue = pd.concat(
        [
            catalogue,
            pd.DataFrame(votes, columns=schema.label_cols),
            pd.DataFrame(schema.question_totals(votes).astype(np.int64), columns=schema.total_cols),
        ],
        axis=1,
    )
    catalogue.to_csv(out_dir / "catalogue.csv", index=False, lineterminator="\n")

    p_asked = schema.p_asked(fractions)
    truth = pd.concat(
        [
            pd.DataFrame({"id_str": ids}),
            pd.DataFrame(fractions, columns=[f"{c}_true_fraction" for c in schema.label_cols]),
            pd.DataFrame(
                p_asked,
                columns=[
                    f"{q.name}{schema.question_suffix}_true_p_asked" for q in schema.questions
                ],
            ),
            latents,
            visibility_terms(latents, config),
        ],
        axis=1,
    )
    table = pa.Table.from_pandas(truth, preserve_index=False)
    pq.write_table(table, out_dir / "truth.parquet")


def _render_all(
    images_dir: Path,
    config: MockSurveyConfig,
    seed: int,
    files: Sequence[str],
    latents: pd.DataFrame,
    threads: int,
) -> None:
    records = latents.to_dict("records")
    jobs = [(i, files[i], records[i]) for i in range(len(files))]
    config_fields = asdict(config)
    progress = Progress("simulate: rendering", len(jobs))
    # At least 20 chunks, so progress is logged at every tenth; the images do not depend on it.
    n_chunks = min(len(jobs), max(threads * 4, 20))
    bounds = np.linspace(0, len(jobs), n_chunks + 1).astype(int)
    chunks = [jobs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    if threads == 1 or len(jobs) < 2:
        for chunk in chunks:
            render_chunk(str(images_dir), config_fields, seed, chunk)
            progress.advance(len(chunk))
        return
    # "fork" where there is one: "spawn" re-runs the caller's main module in every worker, which
    # breaks scripts without a __main__ guard (Snakemake's script: directive). Workers only run
    # numpy/GalSim code with OpenMP pinned to one thread, so forking is safe here.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=threads, mp_context=context) as pool:
        futures = [
            pool.submit(render_chunk, str(images_dir), config_fields, seed, chunk)
            for chunk in chunks
        ]
        for chunk, future in zip(chunks, futures, strict=True):
            future.result()
            progress.advance(len(chunk))
