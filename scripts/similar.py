"""Snakemake entry point: the nearest galaxies to each asked-for galaxy, as a table and a figure."""

from zooflow.ids import read_csv_with_ids
from zooflow.plots import plot_similar
from zooflow.representations import nearest_neighbours
from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        ids = list(snakemake.params.ids)
        if snakemake.input.ids_file:
            ids += read_csv_with_ids(snakemake.input.ids_file)["id_str"].tolist()
        nearest_neighbours(snakemake.input.tables, ids, k=snakemake.params.k).to_csv(
            snakemake.output.similar, index=False
        )
        plot_similar(snakemake.output.similar, snakemake.input.images, snakemake.output.gallery)
