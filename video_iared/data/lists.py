"""Kinetics annotations and downloaded files -> ``path label`` lists (pure functions; the script
``data_prep/build_lists.py`` reads and writes the files).

The official annotation CSVs have the columns ``label,youtube_id,time_start,time_end,split`` (K700 adds
``is_cc``; the 2017 test file has no ``label``). Downloaders name a clip
``{youtube_id}_{start:06d}_{end:06d}.mp4`` or ``{youtube_id}.mp4``, in a flat folder or one folder per
class; both are matched by file name, whatever the folder. Class ids are the class names sorted, the
convention of the released K400 models.
"""
from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass

__all__ = [
    "SPLITS", "Annotation", "read_annotations", "normalize_split", "clip_file_stems", "index_by_stem",
    "match_annotations", "folder_tree_items", "class_ids", "format_list",
]

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validate": "val",
                "validation": "val", "test": "test", "testing": "test"}


@dataclass(frozen=True)
class Annotation:
    """One row of an official annotation CSV (``label`` None where the file has no labels)."""

    label: str | None
    youtube_id: str
    time_start: int
    time_end: int
    split: str


def normalize_split(name: str) -> str:
    """``validate``/``validation`` -> ``val`` etc.; raises for a name that is no split."""
    try:
        return _SPLIT_NAMES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown split {name!r}; expected one of {sorted(_SPLIT_NAMES)}") from None


def read_annotations(path: str) -> list[Annotation]:
    """Rows of an official annotation CSV. The split is the ``split`` column, or the file's name
    (``validate.csv`` -> ``val``) when the column is absent. Errors name file and line."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if not {"youtube_id", "time_start", "time_end"} <= columns:
            raise ValueError(f"{path}: not a Kinetics annotation file: columns {sorted(columns)}, expected "
                             "label,youtube_id,time_start,time_end,split")
        file_split = os.path.splitext(os.path.basename(path))[0]
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append(Annotation(
                    label=row["label"].strip() if row.get("label") else None,
                    youtube_id=row["youtube_id"].strip(),
                    time_start=int(float(row["time_start"])),
                    time_end=int(float(row["time_end"])),
                    split=normalize_split(row.get("split") or file_split),
                ))
            except (ValueError, TypeError, AttributeError) as error:
                raise ValueError(f"{path}:{line}: {error}") from None
    return rows


def clip_file_stems(annotation: Annotation) -> tuple[str, str]:
    """File names (without extension) a downloader gives the clip, most specific first."""
    a = annotation
    return f"{a.youtube_id}_{a.time_start:06d}_{a.time_end:06d}", a.youtube_id


def index_by_stem(relative_paths: list[str]) -> tuple[dict[str, str], list[str]]:
    """``{file name without extension: path}`` and the paths whose name was already taken (the first
    path in sorted order wins)."""
    index: dict[str, str] = {}
    duplicates = []
    for path in sorted(relative_paths):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in index:
            duplicates.append(path)
        else:
            index[stem] = path
    return index, duplicates


def match_annotations(
    annotations: list[Annotation], index: dict[str, str]
) -> tuple[dict[str, list[tuple[str, str]]], list[Annotation]]:
    """``{split: [(path, class name)]}`` of the labelled annotations whose file is in ``index``, and
    the labelled annotations without a file (the missing videos)."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    missing = []
    for a in annotations:
        if a.label is None:
            continue
        path = next((index[stem] for stem in clip_file_stems(a) if stem in index), None)
        if path is None:
            missing.append(a)
        else:
            found[a.split].append((path, a.label))
    return dict(found), missing


def folder_tree_items(relative_paths: list[str]) -> dict[str, list[tuple[str, str]]]:
    """``{split: [(path, class name)]}`` of a ``SPLIT/CLASS/VIDEO`` tree (paths relative to its root);
    raises naming the first path that does not fit."""
    items: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in relative_paths:
        parts = path.split(os.sep)
        if len(parts) != 3:
            raise ValueError(
                f"{path}: expected SPLIT/CLASS/VIDEO (e.g. train/abseiling/x.mp4) in a folder tree")
        items[normalize_split(parts[0])].append((path, parts[1]))
    return dict(items)


def class_ids(names: list[str]) -> dict[str, int]:
    """Class name -> id, ids in sorted name order (the K400 convention)."""
    return {name: i for i, name in enumerate(sorted(set(names)))}


def format_list(items: list[tuple[str, int]]) -> str:
    """``path label`` lines (the official list format); paths may hold spaces, not newlines."""
    for path, _ in items:
        if "\n" in path:
            raise ValueError(f"{path!r}: a newline in a file name cannot be written to a list")
    return "".join(f"{path} {label}\n" for path, label in items)
