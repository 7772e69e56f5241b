"""zooflow: Galaxy Zoo votes and images to Bayesian morphology posteriors and active learning."""

__version__ = "0.1.0"
