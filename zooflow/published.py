"""A mock survey written in the formats real catalogues are published in, for trying (and testing)
the shipped real-survey configurations offline.

* ``gz2``: the Galaxy Zoo 2 public table (Hart et al. 2016) as ``config/gz2.yaml`` expects it:
  ``gz2_hart16.csv.gz`` with 18-digit ``dr7objid`` ids, ``ra``/``dec``, ``total_classifications``,
  ``total_votes`` and per answer the ``t.._..._count``, ``_fraction`` and ``_debiased`` columns,
  and one JPEG per galaxy named by its ``dr7objid`` in ``gz2_images/``. Needs a mock survey
  rendered with the ``gz2`` tree.
* ``decals``: the GZ DECaLS volunteer table (Walmsley et al. 2022) as ``config/decals.yaml``
  expects it: ``gz_decals_volunteers_5.parquet`` with IAU-style ``id_str``/``iauname``,
  ``file_loc`` under per-RA folders (``J000/J000012.34+001234.5.png``) and the ``-dr5`` vote,
  ``_total-votes`` and ``_fraction`` columns, images in ``decals_images/``. Needs a mock survey
  rendered with the ``decals_dr5`` tree and question suffix ``-dr5``.

    python -m zooflow.published gz2 results/data/mock data/
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from zooflow.ids import read_csv_with_ids
from zooflow.schema import Schema, load_schema

FORMATS = ("gz2", "decals")
# dr7objids of SDSS DR7 have 18 digits: more than a float64 keeps.
_FIRST_DR7OBJID = 587722981741363294


def _sky_positions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-0.3, 0.9, n)))


def _iau_name(ra: float, dec: float) -> str:
    """JHHMMSS.ss+DDMMSS.s, the form GZ DECaLS' ids take."""
    hours = ra / 15
    h, m = int(hours), int((hours % 1) * 60)
    s = ((hours * 60) % 1) * 60
    sign = "+" if dec >= 0 else "-"
    d_abs = abs(dec)
    d, dm = int(d_abs), int((d_abs % 1) * 60)
    ds = ((d_abs * 60) % 1) * 60
    return f"J{h:02d}{m:02d}{s:05.2f}{sign}{d:02d}{dm:02d}{ds:04.1f}"


def _mock_catalogue(mock_dir: Path, schema: Schema, what: str) -> pd.DataFrame:
    mock = read_csv_with_ids(mock_dir / "catalogue.csv")
    missing = sorted(set(schema.label_cols) - set(mock.columns))
    if missing:
        raise ValueError(f"{mock_dir}: not {what} (it has no column {missing[0]})")
    return mock


def write_gz2(mock_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """The mock survey in ``mock_dir`` as the GZ2 public table; returns the catalogue path."""
    mock_dir, out_dir = Path(mock_dir), Path(out_dir)
    schema = load_schema("gz2")
    mock = _mock_catalogue(mock_dir, schema, "a gz2 mock survey")
    to_public = {ours: theirs for theirs, ours in schema.external_mapping("hart16").items()}
    ids = _FIRST_DR7OBJID + 7919 * np.arange(len(mock), dtype=np.int64)
    ra, dec = _sky_positions(len(mock), seed)
    table = pd.DataFrame({"dr7objid": ids, "ra": ra, "dec": dec})
    votes = mock[schema.label_cols].to_numpy()
    table["total_classifications"] = mock[schema.total_cols[0]].to_numpy()
    table["total_votes"] = votes.sum(axis=1)
    totals = schema.question_totals(votes)[:, schema.answer_question_index]
    fractions = np.divide(votes, totals, out=np.zeros(votes.shape), where=totals > 0)
    for j, column in enumerate(schema.label_cols):
        stem = to_public[column].removesuffix("_count")
        table[f"{stem}_count"] = votes[:, j]
        table[f"{stem}_fraction"] = fractions[:, j].round(3)
        table[f"{stem}_debiased"] = fractions[:, j].round(3)
    images = out_dir / "gz2_images"
    images.mkdir(parents=True, exist_ok=True)
    for ident, file_loc in zip(ids, mock["file_loc"], strict=True):
        with Image.open(mock_dir / "images" / file_loc) as image:
            image.convert("RGB").save(images / f"{ident}.jpg", quality=95)
    path = out_dir / "gz2_hart16.csv.gz"
    table.to_csv(path, index=False, lineterminator="\n")
    return path


def write_decals(mock_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """The mock survey in ``mock_dir`` as the GZ DECaLS DR5 volunteer table."""
    mock_dir, out_dir = Path(mock_dir), Path(out_dir)
    schema = load_schema("decals_dr5", "-dr5")
    mock = _mock_catalogue(mock_dir, schema, "a decals_dr5 mock survey with question suffix '-dr5'")
    ra, dec = _sky_positions(len(mock), seed)
    names = [_iau_name(r, d) for r, d in zip(ra, dec, strict=True)]
    files = [f"{name[:4]}/{name}.png" for name in names]
    table = pd.DataFrame({"iauname": names, "id_str": names, "ra": ra, "dec": dec})
    table["file_loc"] = files
    votes = mock[schema.label_cols].to_numpy()
    totals = schema.question_totals(votes)
    for i, question in enumerate(schema.questions):
        for j in range(question.indices.start, question.indices.stop):
            column = schema.label_cols[j]
            table[column] = votes[:, j]
            table[f"{column}_fraction"] = np.divide(
                votes[:, j], totals[:, i], out=np.full(len(mock), np.nan), where=totals[:, i] > 0
            )
        table[schema.total_cols[i]] = totals[:, i]
    images = out_dir / "decals_images"
    for source, target in zip(mock["file_loc"], files, strict=True):
        (images / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mock_dir / "images" / source, images / target)
    path = out_dir / "gz_decals_volunteers_5.parquet"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument("mock_dir", help="a rendered mock survey (catalogue.csv, images/)")
    parser.add_argument("out_dir", help="where the catalogue and its image folder go")
    args = parser.parse_args(argv)
    writer = write_gz2 if args.format == "gz2" else write_decals
    print(writer(args.mock_dir, args.out_dir))


if __name__ == "__main__":
    main()
