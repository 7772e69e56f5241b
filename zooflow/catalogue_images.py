"""Where each catalogue row's image is, as ingest stores it, and whether it decodes.

Paths in the catalogue are relative to the images folder unless absolute, or built from the id
with a file template. The clean table keeps them relative to the working directory when the image
lies inside it, so a run moved with its results still finds its images (the mock survey's, a
project's own folder), and absolute otherwise (a survey's shared images).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from zooflow.catalogue_columns import IngestError, template_fields
from zooflow.ids import ID_COLUMN
from zooflow.images import image_problem
from zooflow.vote_checks import is_missing


def image_paths(
    frame: pd.DataFrame,
    ids: list[str | None],
    images_dir: Path,
    id_column: str,
    file_column: str,
    file_template: str | None,
    reasons: list[list[str]],
) -> list[str | None]:
    """Stored image path per row (None where none can be built); relative paths join images_dir."""
    paths: list[str | None] = []
    if file_column in frame.columns:
        raw_paths = frame[file_column].tolist()
        for row, value in enumerate(raw_paths):
            text = "" if is_missing(value) else str(value).strip()
            if not text:
                reasons[row].append(f"no image path in column {file_column}")
                paths.append(None)
            else:
                paths.append(text)
    else:
        assert file_template is not None  # _check_columns guarantees one or the other
        fields = sorted(template_fields(file_template) & set(frame.columns))
        records = frame[fields].to_dict("records")
        for row, (record, row_id) in enumerate(zip(records, ids, strict=True)):
            record[id_column] = row_id
            record.setdefault(ID_COLUMN, row_id)
            try:
                paths.append(file_template.format(**record))
            except (KeyError, IndexError, ValueError, TypeError) as err:
                reasons[row].append(f"cannot build image path from file_template: {err}")
                paths.append(None)
    needs_dir = any(p is not None and not os.path.isabs(p) for p in paths)
    if needs_dir and not images_dir.is_dir():
        raise IngestError(f"images_dir {images_dir} is not a directory")
    return [None if p is None else stored_image_path(images_dir / p) for p in paths]


def stored_image_path(path: str | Path, working_dir: str | Path | None = None) -> str:
    """The path the clean table keeps (see the module docstring)."""
    absolute = Path(os.path.abspath(path))
    working_dir = Path(os.path.abspath(working_dir or os.getcwd()))
    if absolute.is_relative_to(working_dir):
        return absolute.relative_to(working_dir).as_posix()
    return str(absolute)


def _image_reason(path: str) -> str | None:
    """Why this image cannot be used (naming the path), or None."""
    try:
        problem = image_problem(path)
    except Exception as err:  # one odd file (a decompression bomb, say) must not stop ingest
        problem = f"image check failed ({type(err).__name__}: {err})"
    if problem is None:
        return None
    return problem if path in problem else f"{problem}: {path}"


def image_reasons(paths: list[str | None], threads: int) -> dict[str, str | None]:
    """Check each distinct image once, over ``threads`` (Pillow releases the GIL while decoding)."""
    unique = list(dict.fromkeys(p for p in paths if p is not None))
    if threads == 1 or len(unique) < 2:
        return dict(zip(unique, map(_image_reason, unique), strict=True))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(unique, pool.map(_image_reason, unique), strict=True))
