"""Snakemake entry point: decode, crop and resize every accepted image into one HDF5 file."""

from zooflow.preprocess import preprocess_catalogue
from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        preprocess_catalogue(
            snakemake.input.catalogue,
            snakemake.output.images,
            image_size=snakemake.params.image_size,
            crop_fraction=snakemake.params.crop_fraction,
            greyscale=snakemake.params.greyscale,
            fits_stretch=snakemake.params.fits_stretch,
            fits_softening=snakemake.params.fits_softening,
            threads=snakemake.threads,
        )
