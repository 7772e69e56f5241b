"""Vote-count likelihoods against SciPy, masking of unasked questions, Keras wrappers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from zooflow.losses import (
    BINOMIAL_EPSILON,
    LOSSES,
    BinomialLoss,
    DirichletMultinomialLoss,
    QuestionLosses,
    binomial_nll,
    build_loss,
    dirichlet_multinomial_nll,
    metric_name,
    per_question_dirichlet_multinomial_nll,
    per_question_metrics,
    schema_from_config,
    schema_to_config,
)
from zooflow.schema import load_schema


@pytest.fixture(scope="module")
def schema():
    return load_schema("decals_dr5")


def tree_votes(schema, n_galaxies: int, rng: np.random.Generator) -> np.ndarray:
    """Votes that follow the tree: a question is asked only if its parent answer got votes."""
    votes = np.zeros((n_galaxies, schema.n_answers))
    for g in range(n_galaxies):
        for q, parent in zip(schema.questions, schema.parent_index, strict=True):
            asked = 40 if parent is None else int(votes[g, parent])
            if asked:
                votes[g, q.indices] = rng.multinomial(asked, rng.dirichlet(np.ones(len(q.answers))))
    return votes


def scipy_per_question(schema, votes: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """−log DM per question with SciPy; 0 where nobody was asked."""
    out = np.zeros((votes.shape[0], schema.n_questions))
    for i, q in enumerate(schema.questions):
        x, a = votes[:, q.indices], alpha[:, q.indices]
        n = x.sum(axis=1)
        for g in np.flatnonzero(n > 0):
            out[g, i] = -stats.dirichlet_multinomial.logpmf(x[g], a[g], int(n[g]))
    return out


@pytest.fixture(scope="module")
def votes_and_alpha(schema):
    rng = np.random.default_rng(20)
    votes = tree_votes(schema, 12, rng)
    alpha = rng.uniform(1.0, 101.0, size=votes.shape)
    alpha[:3] = rng.uniform(0.2, 3.0, size=(3, schema.n_answers))  # sharply peaked too
    return votes, alpha


def test_tree_votes_leave_some_questions_unasked(schema, votes_and_alpha):
    votes, _ = votes_and_alpha
    totals = schema.question_totals(votes)
    assert (totals == 0).any() and (totals > 0).any()


def test_dirichlet_multinomial_matches_scipy_float64(schema, votes_and_alpha):
    votes, alpha = votes_and_alpha
    expected = scipy_per_question(schema, votes, alpha)
    per_question = per_question_dirichlet_multinomial_nll(votes, alpha, schema).numpy()
    assert per_question.shape == (len(votes), schema.n_questions)
    np.testing.assert_allclose(per_question, expected, rtol=1e-5, atol=1e-9)
    total = dirichlet_multinomial_nll(votes, alpha, schema).numpy()
    np.testing.assert_allclose(total, expected.sum(axis=1), rtol=1e-5)


def test_dirichlet_multinomial_float32_close_to_scipy(schema, votes_and_alpha):
    votes, alpha = votes_and_alpha
    expected = scipy_per_question(schema, votes, alpha).sum(axis=1)
    total = dirichlet_multinomial_nll(
        votes.astype(np.float32), alpha.astype(np.float32), schema
    ).numpy()
    assert total.dtype == np.float32
    np.testing.assert_allclose(total, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_unasked_question_costs_nothing_and_gets_no_gradient(schema, dtype):
    rng = np.random.default_rng(3)
    votes = tree_votes(schema, 6, rng)
    unasked = schema.question_totals(votes)[:, schema.answer_question_index] == 0
    assert unasked.any()
    alpha_np = rng.uniform(1.0, 101.0, size=votes.shape)
    # Concentrations the unmasked formula could not digest: lgamma(0) = inf would give NaN.
    alpha_np[unasked] = 0.0
    alpha = tf.Variable(alpha_np, dtype=dtype)
    with tf.GradientTape() as tape:
        per_question = per_question_dirichlet_multinomial_nll(tf.cast(votes, dtype), alpha, schema)
        total = tf.reduce_sum(per_question)
    grad = tape.gradient(total, alpha).numpy()
    per_question = per_question.numpy()

    question_unasked = schema.question_totals(votes) == 0
    assert np.all(per_question[question_unasked] == 0.0)
    assert np.all(per_question[~question_unasked] > 0.0)
    assert np.all(np.isfinite(grad))
    assert np.all(grad[unasked] == 0.0)
    assert np.all(grad[~unasked] != 0.0)


def test_unasked_question_adds_exactly_nothing_to_the_galaxy_total(schema):
    rng = np.random.default_rng(4)
    votes = tree_votes(schema, 1, rng).astype(np.float32)
    alpha = rng.uniform(1.0, 101.0, size=votes.shape).astype(np.float32)
    root = schema.questions[0].indices
    only_root = np.zeros_like(votes)
    only_root[:, root] = votes[:, root]
    per_question = per_question_dirichlet_multinomial_nll(only_root, alpha, schema).numpy()
    assert np.count_nonzero(per_question) == 1
    expected = -stats.dirichlet_multinomial.logpmf(
        only_root[0, root], alpha[0, root].astype(np.float64), int(only_root[0, root].sum())
    )
    np.testing.assert_allclose(
        dirichlet_multinomial_nll(only_root, alpha, schema).numpy(), [expected], rtol=1e-5
    )


def test_dirichlet_multinomial_rejects_wrong_width(schema):
    with pytest.raises(ValueError, match=r"\(galaxies, 34\).*decals_dr5"):
        dirichlet_multinomial_nll(np.ones((2, 30)), np.ones((2, 30)), schema)


def test_binomial_matches_scipy_without_constant():
    rng = np.random.default_rng(5)
    n = rng.integers(0, 60, size=50).astype(np.float64)
    k = np.floor(rng.uniform(0, 1, size=50) * (n + 1)).clip(max=n)
    p = rng.uniform(0.01, 0.99, size=50)
    log_choose = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    expected = -(stats.binom.logpmf(k, n, p) - log_choose)
    np.testing.assert_allclose(binomial_nll(k, n, p).numpy(), expected, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(
        binomial_nll(k.astype(np.float32), n, p.astype(np.float32)).numpy(), expected, rtol=1e-5
    )


def test_binomial_is_finite_at_certain_predictions():
    p = tf.Variable([0.0, 1.0, 0.0, 1.0], dtype=tf.float32)
    k = tf.constant([3.0, 3.0, 0.0, 5.0])
    n = tf.constant([5.0, 5.0, 5.0, 5.0])
    with tf.GradientTape() as tape:
        loss = binomial_nll(k, n, p)
        total = tf.reduce_sum(loss)
    grad = tape.gradient(total, p).numpy()
    loss = loss.numpy()
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    # Wrong certainty costs about -log(eps) per misjudged vote; right certainty almost nothing.
    lowest = np.float64(np.float32(BINOMIAL_EPSILON))
    highest = np.float64(np.float32(1.0 - BINOMIAL_EPSILON))  # as float32 rounds it
    np.testing.assert_allclose(loss[:2], [-3 * np.log(lowest), -2 * np.log1p(-highest)], rtol=1e-5)
    np.testing.assert_allclose(loss[2:], [0.0, 0.0], atol=1e-5)


def test_keras_losses_reduce_by_batch_mean(schema, votes_and_alpha):
    votes, alpha = votes_and_alpha
    per_galaxy = scipy_per_question(schema, votes, alpha).sum(axis=1)
    loss = DirichletMultinomialLoss(schema)(votes, alpha)
    np.testing.assert_allclose(float(loss), per_galaxy.mean(), rtol=1e-5)

    answer = schema.label_cols.index(schema.column("bar", "strong"))
    rho = np.linspace(0.05, 0.95, len(votes))[:, None]
    k = votes[:, answer]
    n = votes[:, schema.question("bar").indices].sum(axis=1)
    expected = -(k * np.log(rho[:, 0]) + (n - k) * np.log1p(-rho[:, 0]))
    by_index = BinomialLoss(answer, schema)(votes, rho)
    by_name = BinomialLoss(schema.column("bar", "strong"), "decals_dr5")(votes, rho)
    np.testing.assert_allclose(float(by_index), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(by_name), expected.mean(), rtol=1e-5)


def test_binomial_loss_rejects_unknown_answer(schema):
    with pytest.raises(ValueError, match="no answer column 'bar_nope'"):
        BinomialLoss("bar_nope", schema)
    with pytest.raises(ValueError, match="outside tree 'decals_dr5'"):
        BinomialLoss(34, schema)


def test_schema_config_round_trip():
    for name in ("gz2", "decals_dr5"):
        schema = load_schema(name, question_suffix="-dr5")
        restored = schema_from_config(schema_to_config(schema))
        assert restored == schema
        assert restored.label_cols == schema.label_cols
        assert restored.parent_index == schema.parent_index


def test_losses_serialise(schema, votes_and_alpha):
    votes, alpha = votes_and_alpha
    gz2 = load_schema("gz2")
    for loss in (DirichletMultinomialLoss(schema), BinomialLoss(3, gz2)):
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(restored) is type(loss)
        assert restored.schema == loss.schema
    dm = keras.losses.deserialize(keras.losses.serialize(DirichletMultinomialLoss(schema)))
    np.testing.assert_allclose(
        float(dm(votes, alpha)), float(DirichletMultinomialLoss(schema)(votes, alpha))
    )
    assert keras.losses.deserialize(keras.losses.serialize(BinomialLoss(3, gz2))).answer_index == 3


def test_build_loss_registry(schema):
    assert set(LOSSES) == {"dirichlet_multinomial", "binomial"}
    assert isinstance(build_loss("dirichlet_multinomial", schema), DirichletMultinomialLoss)
    binomial = build_loss("binomial", schema, answer_index=0)
    assert isinstance(binomial, BinomialLoss) and binomial.question.name == "smooth-or-featured"
    with pytest.raises(ValueError, match=r"unknown loss 'poisson'.*binomial.*dirichlet"):
        build_loss("poisson", schema)


def test_per_question_metrics_add_up_to_the_loss(schema, votes_and_alpha):
    votes, alpha = votes_and_alpha
    (metric,) = per_question_metrics(schema)
    expected = scipy_per_question(schema, votes, alpha)
    metric.update_state(votes[:5], alpha[:5])
    metric.update_state(votes[5:], alpha[5:])
    result = metric.result()
    assert list(result) == [f"loss_{q}" for q in schema.question_names]
    values = np.array([float(v) for v in result.values()])
    np.testing.assert_allclose(values, expected.mean(axis=0), rtol=1e-5, atol=1e-9)
    total = float(DirichletMultinomialLoss(schema)(votes, alpha))
    np.testing.assert_allclose(values.sum(), total, rtol=1e-5)


def test_question_losses_weight_galaxies_and_reset(schema, votes_and_alpha):
    votes, alpha = votes_and_alpha
    expected = scipy_per_question(schema, votes, alpha)
    weights = np.linspace(0.5, 2.0, len(votes))
    metric = QuestionLosses(schema)
    metric.update_state(votes, alpha, sample_weight=weights)
    values = np.array([float(v) for v in metric.result().values()])
    np.testing.assert_allclose(values, weights @ expected / weights.sum(), rtol=1e-5, atol=1e-9)
    metric.reset_state()
    assert all(float(v) == 0.0 for v in metric.result().values())
    metric.update_state(votes[:1], alpha[:1])
    np.testing.assert_allclose(
        [float(v) for v in metric.result().values()], expected[0], rtol=1e-5, atol=1e-9
    )


def test_metric_name_is_safe_for_tensorboard():
    assert metric_name("smooth-or-featured") == "loss_smooth-or-featured"
    assert metric_name("odd feature?") == "loss_odd_feature_"


def test_per_question_metrics_logged_by_fit_and_reload(schema, tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(6)
    votes = tree_votes(schema, 8, rng).astype(np.float32)
    features = rng.normal(size=(8, 4)).astype(np.float32)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(schema.n_answers, activation="softplus")]
    )
    model.compile(
        optimizer="sgd",
        loss=DirichletMultinomialLoss(schema),
        metrics=per_question_metrics(schema),
    )
    history = model.fit(features, votes, batch_size=8, epochs=1, verbose=0)
    logged = history.history
    assert "loss_smooth-or-featured" in logged and "loss_merging" in logged
    per_question = sum(logged[f"loss_{q}"][0] for q in schema.question_names)
    # The first (only) step's metrics and loss are evaluated on the same weights.
    np.testing.assert_allclose(per_question, logged["loss"][0], rtol=1e-4)

    path = tmp_path / "tiny.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded.loss, DirichletMultinomialLoss)
    assert reloaded.loss.schema == schema
    evaluated = reloaded.evaluate(features, votes, batch_size=8, verbose=0, return_dict=True)
    expected = float(DirichletMultinomialLoss(schema)(votes, model.predict(features, verbose=0)))
    np.testing.assert_allclose(evaluated["loss"], expected, rtol=1e-5)
    per_question_expected = per_question_dirichlet_multinomial_nll(
        votes, model.predict(features, verbose=0), schema
    ).numpy()
    np.testing.assert_allclose(
        evaluated["loss_bar"], per_question_expected[:, 3].mean(), rtol=1e-5, atol=1e-6
    )


def test_question_losses_reload_with_their_tree(schema):
    metric = QuestionLosses(schema)
    clone = QuestionLosses.from_config(metric.get_config())
    assert clone.schema == schema and clone.result_names == metric.result_names
