"""The embedded mock survey: GalSim-rendered galaxies and simulated volunteers walking the tree.

A user without internet access still gets a realistic Galaxy Zoo-like data set. Each galaxy has
latent parameters (morphology, redshift-like distance, bulge fraction, inclination, bar, spiral
arms, disturbance, artifacts). From them we

* render a colour image: GalSim draws the bulge (Sersic), the inclined exponential disk, merger
  companions and tidal plumes in Fourier space, numpy adds the patterned light (log-spiral arms, a
  boxy bar, tidal tails, stars, satellite trails), everything is convolved with the GalSim
  Moffat (+ pixel) PSF, GalSim adds Gaussian sky noise and an asinh stretch maps it to 8 bits;
* derive the *true* answer probabilities of every question from the same parameters and their
  *visibility* (resolution and surface brightness), so that what volunteers say is what the image
  shows: far-away galaxies shrink and fade, and volunteers answer "smooth", "no" or "cant-tell";
* let a DECaLS-like number of volunteers walk the decision tree: a root question is a multinomial
  draw with all volunteers, a child question a multinomial draw with exactly the volunteers who
  gave its parent answer.

Outputs in ``out_dir``: ``images/{id_str}.png``, ``catalogue.csv`` (what training reads) and
``truth.parquet`` (true fractions, P(asked) and latent parameters, for evaluation only).

Every random number of galaxy ``i`` comes from ``numpy.random.SeedSequence(seed,
spawn_key=(stream, i))``, so outputs are byte-identical for a seed whatever the number of worker
processes, and the first galaxies of a larger survey equal those of a smaller one.

One module per step: :mod:`~zooflow.mock.config` (the settings, each documented),
:mod:`~zooflow.mock.streams` (the random streams), :mod:`~zooflow.mock.latents`,
:mod:`~zooflow.mock.visibility`, :mod:`~zooflow.mock.answers` (true answer probabilities),
:mod:`~zooflow.mock.votes`, :mod:`~zooflow.mock.render` (images) and
:mod:`~zooflow.mock.survey`, which runs them all and writes the files. This package re-exports
what the workflow and the tests use.
"""

from zooflow.mock.answers import ANSWER_MODELS, check_schema, true_fractions
from zooflow.mock.config import MockSurveyConfig
from zooflow.mock.latents import (
    ARTIFACT_KINDS,
    MERGER_STATES,
    MORPHOLOGIES,
    WINDINGS,
    sample_latents,
)
from zooflow.mock.render import render_galaxy
from zooflow.mock.survey import galaxy_ids, simulate_survey
from zooflow.mock.visibility import visibility_terms
from zooflow.mock.votes import simulate_votes

__all__ = [
    "ANSWER_MODELS",
    "ARTIFACT_KINDS",
    "MERGER_STATES",
    "MORPHOLOGIES",
    "WINDINGS",
    "MockSurveyConfig",
    "check_schema",
    "galaxy_ids",
    "render_galaxy",
    "sample_latents",
    "simulate_survey",
    "simulate_votes",
    "true_fractions",
    "visibility_terms",
]
