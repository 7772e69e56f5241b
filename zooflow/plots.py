"""Figures a person looks at: calibration, posteriors per galaxy, training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zooflow.ids import read_csv_with_ids
from zooflow.posteriors import count_pmf  # noqa: E402
from zooflow.schema import Question, Schema  # noqa: E402


def _note(ax, text: str) -> None:
    """Say on an empty panel why it is empty, rather than leave blank axes."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)


KEY_ANSWERS = (
    "smooth-or-featured_smooth",
    "smooth-or-featured_featured-or-disk",
    "disk-edge-on_yes",
    "has-spiral-arms_yes",
    "bar_no",
)


def panel_grid(n_panels: int, columns: int, panel_size: tuple[float, float]):
    """A figure of ``n_panels`` panels, ``columns`` to a row (fewer if fewer panels), each
    ``panel_size`` inches; the grid's spare panels are blank. Returns (figure, axes (rows, cols))
    with at least one panel, so a figure that has nothing to show can say so."""
    columns = min(columns, max(n_panels, 1))
    rows = max(1, -(-n_panels // columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(panel_size[0] * columns, panel_size[1] * rows), squeeze=False
    )
    for ax in list(axes.flat)[n_panels:]:
        ax.axis("off")
    return fig, axes


def plot_coverage(coverage: pd.DataFrame, out_path: str | Path) -> None:
    """W+20 coverage: predicted vs observed probability of k within E[k] ± e, per answer."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if coverage.empty:
        _note(ax, "No test galaxy has enough votes\nto measure coverage (evaluate.min_votes)")
    answers = [a for a in coverage["answer"].unique() if _plain(a) in KEY_ANSWERS] or list(
        coverage["answer"].unique()[:5]
    )
    for answer in answers:
        part = coverage[coverage["answer"] == answer]
        ax.plot(part["observed"], part["predicted"], marker="o", ms=3, label=answer)
    mean = coverage.groupby("error_fraction")[["observed", "predicted"]].mean()
    ax.plot(mean["observed"], mean["predicted"], color="k", lw=2, label="mean over answers")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.set_xlabel("observed frequency of k within E[k] ± e")
    ax.set_ylabel("predicted probability of k within E[k] ± e")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Discrete coverage (W+20), e = 0 … N")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def plot_pit(pit: pd.DataFrame, schema: Schema, out_path: str | Path) -> None:
    """Randomized PIT histograms, one panel per question (its answers pooled), with each
    answer's share of counts inside the central 90% of its predictive in the legend.

    Flat is honest; a U shape means predictives too narrow (over-confident), a hump too wide.
    """
    bins = [c for c in pit.columns if c.startswith("bin_")]
    owner = {col: q.name for q in schema.questions for col in schema.label_cols[q.indices]}
    scored = pit[pit["n_counts"] > 0].assign(question=lambda t: t["answer"].map(owner))
    questions = [q for q in schema.question_names if q in set(scored["question"])]
    fig, axes = panel_grid(len(questions), 5, (3.0, 2.6))
    centres = (np.arange(len(bins)) + 0.5) / len(bins)
    for ax, question in zip(axes.flat, questions, strict=False):
        rows = scored[scored["question"] == question]
        counts = rows[bins].sum(axis=0).to_numpy(float)
        ax.bar(centres, counts / counts.sum() * len(bins), width=1 / len(bins), color="tab:blue")
        ax.axhline(1.0, color="k", lw=1, ls="--")
        for _, row in rows.iterrows():
            ax.plot(
                [], [], " ", label=f"{row['answer'].rpartition('_')[2]}: {row['central_share']:.0%}"
            )
        ax.set_title(question, fontsize=9)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=6, title="in central 90%", title_fontsize=6, loc="upper center")
    if not questions:
        axes[0, 0].text(0.5, 0.5, "no answer had enough votes to score", ha="center")
    fig.supxlabel("PIT of the observed count under its predictive")
    fig.supylabel("density")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def _plain(answer: str) -> str:
    question, _, choice = answer.rpartition("_")
    for suffix in ("-dr5", "-gz2", "-dr8", "-dr12"):
        question = question.removesuffix(suffix)
    return f"{question}_{choice}"


def plot_training(history: pd.DataFrame, out_path: str | Path) -> None:
    """Training and validation loss per epoch, and per-question validation losses if logged."""
    per_question = [c for c in history.columns if c.startswith("val_loss_")]
    ncols = 2 if per_question else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4), squeeze=False)
    epoch = history["epoch"] + 1 if "epoch" in history else np.arange(1, len(history) + 1)
    axes[0, 0].plot(epoch, history["loss"], label="training")
    if "val_loss" in history:
        axes[0, 0].plot(epoch, history["val_loss"], label="validation")
    axes[0, 0].set_xlabel("epoch")
    axes[0, 0].set_ylabel("loss (negative log-likelihood per galaxy)")
    axes[0, 0].legend()
    if per_question:
        for col in per_question:
            axes[0, 1].plot(epoch, history[col], label=col.removeprefix("val_loss_"))
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].set_ylabel("validation loss per question")
        axes[0, 1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def _vote_posteriors(
    concentrations: np.ndarray, schema: Schema, answer: str, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pass Beta-binomial pmfs (T, n+1) of the answer's vote count, and their mixture."""
    i = schema.label_cols.index(answer)
    q = schema.questions[schema.answer_question_index[i]]
    a = concentrations[i, :].astype(np.float64)
    b = concentrations[q.indices, :].astype(np.float64).sum(axis=0) - a
    per_pass = count_pmf(np.array([n]), a[None, :], b[None, :], n)[0]
    return per_pass, per_pass.mean(axis=0)


def plot_posteriors(
    ids: Sequence[str],
    votes: np.ndarray,
    predictions: np.ndarray,
    images: Mapping[str, np.ndarray],
    schema: Schema,
    out_path: str | Path,
    *,
    answer: str | None = None,
    n_galaxies: int = 6,
    seed: int = 0,
) -> None:
    """The W+20 posterior figure, one galaxy per row: the image | one pass's posterior over the
    answer's vote count | every pass in grey with their mixture, the observed count marked."""
    answer = answer or schema.label_cols[0]
    if len(ids) == 0:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        _note(ax, "No test galaxies: no posteriors to show")
        fig.savefig(out_path, dpi=110)
        plt.close(fig)
        return
    i = schema.label_cols.index(answer)
    totals = schema.question_totals(votes)[:, schema.answer_question_index[i]].astype(int)
    candidates = np.flatnonzero(totals > 0)
    if len(candidates) == 0:
        candidates = np.arange(len(ids))
    rng = np.random.default_rng(seed)
    # Spread the chosen galaxies over the predicted fraction, from clearly no to clearly yes.
    fraction = predictions[candidates, i, :].mean(axis=1) / np.maximum(
        predictions[candidates][:, schema.questions[schema.answer_question_index[i]].indices, :]
        .sum(axis=1)
        .mean(axis=1),
        1e-9,
    )
    order = candidates[np.argsort(fraction, kind="stable")]
    picks = order[np.linspace(0, len(order) - 1, min(n_galaxies, len(order))).astype(int)]
    if len(picks) == 0:
        picks = rng.choice(len(ids), size=min(n_galaxies, len(ids)), replace=False)
    fig, axes = plt.subplots(len(picks), 3, figsize=(10, 2.2 * len(picks)), squeeze=False)
    for row, g in enumerate(picks):
        n = max(int(totals[g]), 1)
        per_pass, mixture = _vote_posteriors(predictions[g], schema, answer, n)
        image = images.get(str(ids[g]))
        ax_img, ax_one, ax_all = axes[row]
        if image is not None:
            ax_img.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        ax_img.set_title(str(ids[g]), fontsize=8)
        ax_img.axis("off")
        k = np.arange(n + 1)
        ax_one.bar(k, per_pass[0], color="tab:blue", width=0.9)
        ax_one.axvline(votes[g, i], color="tab:red", lw=2, label="observed")
        ax_one.set_ylabel("p(k)")
        for t in range(per_pass.shape[0]):
            ax_all.plot(k, per_pass[t], color="grey", alpha=0.3, lw=0.8)
        ax_all.plot(k, mixture, color="k", lw=2, label="mixture over passes")
        ax_all.axvline(votes[g, i], color="tab:red", lw=2, label="observed")
        if row == 0:
            ax_one.set_title("one dropout pass", fontsize=9)
            ax_all.set_title(f"{per_pass.shape[0]} passes and their mixture", fontsize=9)
            ax_all.legend(fontsize=7)
        if row == len(picks) - 1:
            ax_one.set_xlabel(f"votes for {answer} (k of N)")
            ax_all.set_xlabel(f"votes for {answer} (k of N)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def _binomial_as_concentrations(rho: np.ndarray, strength: float = 1e6) -> np.ndarray:
    """ρ samples (G, T) as near-degenerate 2-answer concentrations, to reuse the Beta-binomial
    plotting: Beta(ρ·s, (1−ρ)·s) → Binomial(N, ρ) as s grows."""
    return np.stack([rho * strength, (1 - rho) * strength], axis=1)


def plot_run(
    *,
    predictions_path: str | Path,
    coverage_path: str | Path,
    pit_path: str | Path,
    history_path: str | Path,
    images_path: str | Path,
    schema: Schema,
    out: Mapping[str, str],
    binomial_answer: str = "smooth-or-featured_smooth",
    seed: int = 0,
    summary_path: str | Path | None = None,
) -> None:
    """Every figure of one run: ``out`` names coverage, pit, posteriors and training paths, and
    summary_table, the evaluation summary (``summary_path``) as the report's table."""
    import json

    from zooflow.posteriors import read_predictions
    from zooflow.tables import evaluation_table, write_table

    if summary_path is not None:
        write_table(
            evaluation_table(json.loads(Path(summary_path).read_text())),
            out["summary_table"],
            "Evaluation on the test set",
            "Headline numbers; the same as evaluation/summary.json.",
        )
    ids, votes, predictions, attrs = read_predictions(predictions_path)
    plot_coverage(pd.read_csv(coverage_path), out["coverage"])
    plot_pit(pd.read_csv(pit_path), schema, out["pit"])
    plot_training(pd.read_csv(history_path), out["training"])
    with h5py.File(images_path, "r") as f:
        index = {s: n for n, s in enumerate(f["id_str"].asstr()[:])}
        wanted = sorted(index[i] for i in ids if i in index)
        stack = f["images"][wanted] if wanted else np.empty((0,))
        images = {str(f["id_str"].asstr()[n]): stack[k] for k, n in enumerate(wanted)}
    if str(attrs.get("head", "dirichlet")) == "binomial":
        # One answer against the rest of its question, drawn as a two-answer tree.
        i = schema.label_cols.index(binomial_answer)
        k = votes[:, i]
        total = schema.question_totals(votes)[:, schema.answer_question_index[i]]
        binary = Schema("binomial", (Question(binomial_answer, ("yes", "no"), None, 0),))
        concentrations = _binomial_as_concentrations(predictions.reshape(len(ids), -1))
        plot_posteriors(
            ids,
            np.stack([k, total - k], axis=1),
            concentrations,
            images,
            binary,
            out["posteriors"],
            seed=seed,
        )
    else:
        plot_posteriors(ids, votes, predictions, images, schema, out["posteriors"], seed=seed)


def plot_learning_curves(curves: pd.DataFrame, saved: Mapping, out_path: str | Path) -> None:
    """Each strategy's scores against the number of labelled galaxies, mean ± spread over seeds.

    ``saved``: {strategy: {metric: labels_saved numbers}} as from ``labels_saved_by_strategy``.
    """
    metrics = [
        m
        for m in (
            "rmse",
            "rmse_truth",
            "rmse_smooth-or-featured",
            "rmse_bar",
            "loss",
            "coverage_error",
        )
        if m in curves and curves[m].notna().any()
    ]
    fig, axes = panel_grid(len(metrics), 3, (4.2, 3.4))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for strategy, part in curves.groupby("strategy"):
            stats_ = part.groupby("round").agg(
                n=("n_labelled", "mean"),
                mean=(metric, "mean"),
                lo=(metric, "min"),
                hi=(metric, "max"),
            )
            ax.plot(stats_["n"], stats_["mean"], marker="o", ms=3, label=strategy)
            # Band: the range over seeds.
            ax.fill_between(stats_["n"], stats_["lo"], stats_["hi"], alpha=0.2)
        savings = [
            f"{strategy} {100 * by_metric[metric]['labels_saved']:.0f}%"
            + _interval_text(by_metric[metric].get("labels_saved_interval"))
            for strategy, by_metric in saved.items()
            if np.isfinite(by_metric.get(metric, {}).get("labels_saved", np.nan))
        ]
        title = metric + (f"\nlabels saved: {', '.join(savings)}" if savings else "")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("labelled galaxies")
        ax.legend(fontsize=7)
    if not metrics:
        _note(axes[0, 0], "No scores yet: the rounds have no test metrics")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def _interval_text(interval) -> str:
    """' [lo%, hi%]' for a bootstrap interval; a bound of None (never reached) shows as '-'."""
    if not interval:
        return ""
    lo, hi = (("-" if v is None else f"{100 * v:.0f}%") for v in interval)
    return f" [{lo}, {hi}]"


def plot_savings_by_budget(by_budget: pd.DataFrame, out_path: str | Path) -> None:
    """Labels saved against the baseline's budget, had the study stopped after each round.

    ``by_budget`` as from ``labels_saved_by_budget``. Shaded: the 35-60% W+20 reported.
    """
    metrics = [
        m
        for m in ("rmse", "rmse_truth", "rmse_smooth-or-featured", "rmse_bar")
        if m in set(by_budget["metric"])
    ] or ["rmse"]
    budget = next((c for c in by_budget.columns if c.endswith("_labels")), "labels")
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.6 * len(metrics), 3.3), sharex=True, squeeze=False
    )
    for ax, metric in zip(axes.flat, metrics, strict=True):
        ax.axhspan(35, 60, color="grey", alpha=0.15, label="W+20: 35-60%")
        ax.axhline(0, color="k", lw=0.5)
        part = by_budget[by_budget["metric"] == metric]
        for strategy, rows in part.groupby("strategy"):
            # Gaps where no saving is defined (the baseline had not improved, or never reached).
            ax.plot(rows[budget], 100 * rows["labels_saved"], marker="o", ms=3, label=strategy)
        if part["labels_saved"].notna().sum() == 0:
            _note(
                ax,
                "no saving defined yet:\nneeds random and two rounds,\nand a score to reach"
                if part.empty
                else "no saving defined:\nrandom had not improved,\nor was never reached",
            )
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel(f"stopping budget ({budget.replace('_', ' ')})")
        ax.set_ylabel("labels saved (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def plot_composition(composition: pd.DataFrame, out_path: str | Path) -> None:
    """Featured share of each round's acquisitions against the pool they were chosen from."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if composition.empty:
        _note(ax, "no acquisitions yet")
    for strategy, part in composition.groupby("strategy") if len(composition) else ():
        mean = part.groupby("round").mean(numeric_only=True)
        ax.plot(
            mean.index,
            mean["acquired_featured_fraction"],
            marker="o",
            label=f"{strategy}: acquired",
        )
        ax.plot(mean.index, mean["pool_featured_fraction"], ls="--", label=f"{strategy}: pool")
    ax.set_xlabel("round")
    ax.set_ylabel("fraction featured (volunteer majority)")
    ax.set_ylim(0, 1)
    if len(composition):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def gallery_picks(scores: pd.DataFrame, n_galaxies: int) -> tuple[str, dict[str, pd.DataFrame]]:
    """The column galleries rank by and the ``n_galaxies`` most and least informative rows.

    The combined mutual information (``mi``) where the strategy wrote one, so power BALD's
    gallery shows information rather than its noisy sampling order; else ``score``. Ties go in
    id order.
    """
    measure = "mi" if "mi" in scores.columns else "score"
    ranked = scores.sort_values([measure, "id_str"], ascending=[False, True], kind="stable")
    return measure, {
        "most informative": ranked.head(n_galaxies),
        "least informative": ranked.tail(n_galaxies),
    }


def plot_gallery(
    scores_path: str | Path, images_path: str | Path, out_path: str | Path, *, n_galaxies: int = 8
) -> None:
    """The most (top row) and least (bottom row) informative waiting galaxies, with scores."""
    measure, picks = gallery_picks(read_csv_with_ids(scores_path), n_galaxies)
    with h5py.File(images_path, "r") as f:
        index = {s: n for n, s in enumerate(f["id_str"].asstr()[:])}
        fig, axes = plt.subplots(2, n_galaxies, figsize=(1.6 * n_galaxies, 3.8), squeeze=False)
        for row, (label, chosen) in enumerate(picks.items()):
            for col in range(n_galaxies):
                ax = axes[row, col]
                ax.axis("off")
                if col >= len(chosen):
                    continue
                galaxy = chosen.iloc[col]
                image = f["images"][index[galaxy["id_str"]]]
                ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
                ax.set_title(f"{galaxy['id_str']}\n{galaxy[measure]:.3f}", fontsize=7)
            axes[row, 0].text(
                -0.1,
                0.5,
                label,
                transform=axes[row, 0].transAxes,
                rotation=90,
                va="center",
                ha="right",
                fontsize=9,
            )
        if all(chosen.empty for chosen in picks.values()):
            _note(axes[0, n_galaxies // 2], "no galaxies waiting in the pool")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def _show_image(ax, image: np.ndarray) -> None:
    ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)


def plot_similar(
    similar_path: str | Path, images_path: str | Path, out_path: str | Path, *, max_queries: int = 8
) -> None:
    """One row per query galaxy (up to ``max_queries``): the query, then its nearest galaxies
    in the representation space, each titled with its id and cosine similarity."""
    similar = read_csv_with_ids(similar_path, id_columns=("query_id", "id_str"))
    queries = list(dict.fromkeys(similar["query_id"]))[:max_queries]
    k = int(similar["rank"].max()) if len(similar) else 0
    n_rows, n_cols = max(len(queries), 1), k + 1
    with h5py.File(images_path, "r") as f:
        index = {s: n for n, s in enumerate(f["id_str"].asstr()[:])}
        fig, axes = plt.subplots(
            n_rows, n_cols, figsize=(1.5 * n_cols, 1.7 * n_rows), squeeze=False
        )
        for row, query in enumerate(queries):
            neighbours = similar[similar["query_id"] == query].sort_values("rank")
            shown = [(query, "query")] + [
                (galaxy, f"{value:.3f}")
                for galaxy, value in zip(
                    neighbours["id_str"], neighbours["similarity"], strict=True
                )
            ]
            for col, (galaxy, label) in enumerate(shown):
                _show_image(axes[row, col], f["images"][index[galaxy]])
                axes[row, col].set_title(f"{galaxy}\n{label}", fontsize=6)
        for ax in axes.flat:
            ax.axis("off")
        if not queries:
            _note(axes[0, 0], "no galaxies asked for (similar.ids)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def plot_anomalies(
    ranked: pd.DataFrame, images_path: str | Path, out_path: str | Path, *, columns: int = 6
) -> None:
    """The galaxies of ``ranked`` (``rank``, ``id_str``, ``outlier_score``), most unusual
    first, in a grid titled with rank, id and score."""
    fig, axes = panel_grid(len(ranked), columns, (1.5, 1.7))
    with h5py.File(images_path, "r") as f:
        index = {s: n for n, s in enumerate(f["id_str"].asstr()[:])}
        for ax, (rank, galaxy, score) in zip(
            axes.flat,
            ranked[["rank", "id_str", "outlier_score"]].itertuples(index=False),
            strict=False,
        ):
            _show_image(ax, f["images"][index[galaxy]])
            ax.set_title(f"#{rank} {galaxy}\n{score:.3g}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    if ranked.empty:
        _note(axes[0, 0], "no galaxies to rank")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
