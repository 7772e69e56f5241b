"""The mock volunteers' true answer probabilities, one model per question and answer set.

Each model maps what volunteers see (:class:`zooflow.mock.visibility.Seen`) to the probability of
every answer; :func:`true_fractions` mixes in the volunteers' error floor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import special

from zooflow.mock.config import MockSurveyConfig
from zooflow.mock.latents import MERGER_STATES
from zooflow.mock.visibility import Seen
from zooflow.schema import Schema


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


def _nearest(value: np.ndarray, centres: dict[str, float], width: float) -> dict[str, np.ndarray]:
    """Soft assignment to named centres: ``p_k ∝ exp(-(value - c_k)^2 / (2 width^2))``."""
    names = list(centres)
    c = np.array([centres[k] for k in names])
    logits = -((value[:, None] - c[None, :]) ** 2) / (2 * width**2)
    p = special.softmax(logits, axis=1)
    return {k: p[:, j] for j, k in enumerate(names)}


def _p_featured_clean(s: Seen) -> np.ndarray:
    """Disk evidence through a sigmoid: ``visibility * (sqrt(1 - B/T) + arms + bar)`` plus
    thinness (a thin streak is a disk even when small; the PSF already rounds tiny ones)."""
    thin = np.clip((0.45 - s.q_disk_obs) / 0.2, 0.0, 1.0) * (1 - s.bt)
    evidence = s.vis * (np.sqrt(1 - s.bt) + 0.3 * s.arms * s.face_on + 0.2 * s.bar)
    evidence += 0.6 * thin * s.vis_brightness
    return _sigmoid((evidence - 0.45) / 0.09)


def _smooth_or_featured(s: Seen) -> dict[str, np.ndarray]:
    artifact_p = np.select(
        [
            s.artifact_kind == "star",
            s.artifact_kind == "satellite-trail",
            s.artifact_kind == "noise",
        ],
        [0.93, 0.85, 0.9],
        0.005,
    )
    featured = np.where(s.is_artifact, 0.25, _p_featured_clean(s)) * (1 - artifact_p)
    return {
        "smooth": 1 - artifact_p - featured,
        "featured-or-disk": featured,
        "artifact": artifact_p,
    }


def _disk_edge_on(s: Seen) -> dict[str, np.ndarray]:
    yes = _sigmoid((0.33 - s.q_disk_obs) / 0.04)
    return {"yes": yes, "no": 1 - yes}


def _has_spiral_arms(s: Seen) -> dict[str, np.ndarray]:
    yes = _sigmoid((s.arm_vis - 0.15) / 0.045)
    return {"yes": yes, "no": 1 - yes}


def _bar_parts(s: Seen) -> tuple[np.ndarray, np.ndarray]:
    barred = _sigmoid((s.bar_vis - 0.18) / 0.05)
    strong_if_barred = _sigmoid((s.bar_vis - 0.5) / 0.08)
    return barred, strong_if_barred


def _bar_three(s: Seen) -> dict[str, np.ndarray]:
    barred, strong = _bar_parts(s)
    return {"strong": barred * strong, "weak": barred * (1 - strong), "no": 1 - barred}


def _bar_two(s: Seen) -> dict[str, np.ndarray]:
    barred, _ = _bar_parts(s)
    return {"yes": barred, "no": 1 - barred}


def _apparent_bulge(s: Seen) -> np.ndarray:
    """Unresolved disks look bulge-dominated: ``B/T + (1 - B/T) * 0.6 * (1 - visibility)``."""
    return s.bt + (1 - s.bt) * 0.6 * (1 - s.vis)


def _bulge_size_five(s: Seen) -> dict[str, np.ndarray]:
    centres = {"dominant": 0.8, "large": 0.55, "moderate": 0.35, "small": 0.17, "none": 0.03}
    return _nearest(_apparent_bulge(s), centres, 0.09)


def _bulge_size_four(s: Seen) -> dict[str, np.ndarray]:
    centres = {"dominant": 0.75, "obvious": 0.45, "just-noticeable": 0.2, "no": 0.03}
    return _nearest(_apparent_bulge(s), centres, 0.09)


def _how_rounded(cigar: str) -> Callable[[Seen], dict[str, np.ndarray]]:
    def model(s: Seen) -> dict[str, np.ndarray]:
        return _nearest(s.q_obs, {"round": 0.9, "in-between": 0.62, cigar: 0.32}, 0.09)

    return model


def _edge_on_bulge_parts(s: Seen) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(none, boxy, rounded): a boxy bulge is a bar seen edge-on."""
    boxy_vis = s.bar * s.vis * (1 - s.face_on)
    bulge_light = (s.bt + 0.5 * s.bar) * (0.4 + 0.6 * s.vis)
    none = _sigmoid((0.1 - bulge_light) / 0.03)
    boxy = (1 - none) * _sigmoid((boxy_vis - 0.3) / 0.07)
    return none, boxy, 1 - none - boxy


def _edge_on_bulge(s: Seen) -> dict[str, np.ndarray]:
    none, boxy, rounded = _edge_on_bulge_parts(s)
    return {"boxy": boxy, "none": none, "rounded": rounded}


def _bulge_shape(s: Seen) -> dict[str, np.ndarray]:
    none, boxy, rounded = _edge_on_bulge_parts(s)
    return {"round": rounded, "boxy": boxy, "no-bulge": none}


def _spiral_winding(s: Seen) -> dict[str, np.ndarray]:
    """Pitch angle near 10/20/30 degrees, blended towards a prior as the arms fade."""
    by_pitch = _nearest(s.pitch, {"tight": 10.0, "medium": 20.0, "loose": 30.0}, 4.5)
    seen = np.clip(s.arm_vis / 0.5, 0.0, 1.0)
    prior = {"tight": 0.3, "medium": 0.45, "loose": 0.25}
    return {k: seen * by_pitch[k] + (1 - seen) * prior[k] for k in prior}


def _spiral_arm_count(s: Seen) -> dict[str, np.ndarray]:
    """Counts blur into neighbours (more for many arms); faint arms get "cant-tell"."""
    cant_tell = _sigmoid((0.25 - s.arm_vis) / 0.07)
    counted = np.where(s.n_arms > 0, np.minimum(s.n_arms, 5), 2).astype(np.float64)
    width = 0.35 + 0.12 * counted
    k = np.arange(1, 6, dtype=np.float64)
    p = special.softmax(-((counted[:, None] - k[None, :]) ** 2) / (2 * width[:, None] ** 2), axis=1)
    names = ("1", "2", "3", "4", "more-than-4")
    out = {name: (1 - cant_tell) * p[:, j] for j, name in enumerate(names)}
    out["cant-tell"] = cant_tell
    return out


def _merging(s: Seen) -> dict[str, np.ndarray]:
    centres = {name: float(i) for i, name in enumerate(MERGER_STATES)}
    return _nearest(s.merger_seen.astype(np.float64), centres, 0.45)


def _something_odd(s: Seen) -> dict[str, np.ndarray]:
    disturbed = _sigmoid((s.merger_seen - 1.3) / 0.25)
    odd_artifact = np.select(
        [
            s.artifact_kind == "satellite-trail",
            s.artifact_kind == "noise",
            s.artifact_kind == "star",
        ],
        [0.6, 0.5, 0.3],
        0.03,
    )
    yes = 1 - (1 - disturbed) * (1 - odd_artifact)
    return {"yes": yes, "no": 1 - yes}


AnswerModel = Callable[[Seen], dict[str, np.ndarray]]

# Question name -> {answer set -> model}; covers the decals_dr5 and gz2 trees.
ANSWER_MODELS: dict[str, dict[frozenset[str], AnswerModel]] = {
    "smooth-or-featured": {
        frozenset({"smooth", "featured-or-disk", "artifact"}): _smooth_or_featured
    },
    "disk-edge-on": {frozenset({"yes", "no"}): _disk_edge_on},
    "has-spiral-arms": {frozenset({"yes", "no"}): _has_spiral_arms},
    "bar": {frozenset({"strong", "weak", "no"}): _bar_three, frozenset({"yes", "no"}): _bar_two},
    "bulge-size": {
        frozenset({"dominant", "large", "moderate", "small", "none"}): _bulge_size_five,
        frozenset({"dominant", "obvious", "just-noticeable", "no"}): _bulge_size_four,
    },
    "how-rounded": {
        frozenset({"round", "in-between", "cigar-shaped"}): _how_rounded("cigar-shaped"),
        frozenset({"round", "in-between", "cigar"}): _how_rounded("cigar"),
    },
    "edge-on-bulge": {frozenset({"boxy", "none", "rounded"}): _edge_on_bulge},
    "bulge-shape": {frozenset({"round", "boxy", "no-bulge"}): _bulge_shape},
    "spiral-winding": {frozenset({"tight", "medium", "loose"}): _spiral_winding},
    "spiral-arm-count": {
        frozenset({"1", "2", "3", "4", "more-than-4", "cant-tell"}): _spiral_arm_count
    },
    "merging": {frozenset(MERGER_STATES): _merging},
    "something-odd": {frozenset({"yes", "no"}): _something_odd},
}


def check_schema(schema: Schema) -> None:
    """Raise ValueError unless the mock can answer every question of ``schema``."""
    for q in schema.questions:
        if q.name not in ANSWER_MODELS:
            raise ValueError(
                f"the mock survey cannot simulate question {q.name!r} of tree {schema.name!r}: "
                f"it knows only {sorted(ANSWER_MODELS)}"
            )
        if frozenset(q.answers) not in ANSWER_MODELS[q.name]:
            known = [sorted(a) for a in ANSWER_MODELS[q.name]]
            raise ValueError(
                f"the mock survey cannot simulate question {q.name!r} of tree {schema.name!r} "
                f"with answers {list(q.answers)}: it knows that question with answers {known}"
            )


def true_fractions(latents: pd.DataFrame, schema: Schema, config: MockSurveyConfig) -> np.ndarray:
    """(galaxies, answers) probability of each answer among the volunteers asked its question.

    Every question's clean model ``p`` is mixed with the error floor ``e = volunteer_error``:
    ``(1 - e) * p + e / n_answers``, so each value lies strictly in (0, 1) and each question sums
    to 1. Columns follow ``schema.label_cols``.
    """
    check_schema(schema)
    seen = Seen(latents, config)
    out = np.empty((len(latents), schema.n_answers))
    e = config.volunteer_error
    for q in schema.questions:
        model = ANSWER_MODELS[q.name][frozenset(q.answers)]
        by_answer = model(seen)
        clean = np.clip(np.stack([by_answer[a] for a in q.answers], axis=1), 0.0, None)
        clean /= clean.sum(axis=1, keepdims=True)
        out[:, q.indices] = (1 - e) * clean + e / len(q.answers)
    return out
