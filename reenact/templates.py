"""The template database: rows of (identity, expression, emotion) and the nearest-identity lookup.

At inference each emotion's expression comes from the database rows of that emotion whose
identities are nearest to the source's (thesis §3.3.1): a person gets the expression of the
people who look most like them. Plain arrays, no pickles::

    identity (R, 100) float32 · expression (R, 55) float32 · label (R,) int32 · names (E,) str

The default database (:func:`facs_database`) is generated from the FACS emotion catalogue over a
spread of identities; :func:`build_from_photos` makes one from a folder of labelled photos.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reenact.emotions import EmotionCatalogue
from reenact.errors import RequestError
from reenact.morphable import EXPR_SLICE, ID_SLICE, N_EXPRESSION, N_IDENTITY

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class TemplateDatabase:
    identity: np.ndarray  # (R, 100) float32
    expression: np.ndarray  # (R, 55) float32 in [0, 1]
    label: np.ndarray  # (R,) int32 index into names
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        rows = len(self.label)
        if self.identity.shape != (rows, N_IDENTITY) or self.expression.shape != (
            rows,
            N_EXPRESSION,
        ):
            raise ValueError("template arrays must be (R, 100), (R, 55) and (R,)")
        if rows and (self.label.min() < 0 or self.label.max() >= len(self.names)):
            raise ValueError("template labels must index names")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            identity=self.identity,
            expression=self.expression,
            label=self.label,
            names=np.array(self.names),
        )

    @classmethod
    def load(cls, path: Path) -> TemplateDatabase:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                z["identity"].astype(np.float32),
                z["expression"].astype(np.float32),
                z["label"].astype(np.int32),
                tuple(str(n) for n in z["names"]),
            )

    def lookup(self, identity: np.ndarray, names: Sequence[str], neighbours: int = 5) -> np.ndarray:
        """(K, 55) float32 expressions of ``names`` for a person of ``identity`` (100,).

        Each is the inverse-distance-weighted mean over the ``neighbours`` rows of that emotion
        nearest in identity. RequestError for a name the database does not hold.
        """
        out = np.empty((len(names), N_EXPRESSION), np.float32)
        for k, name in enumerate(names):
            if name not in self.names:
                raise RequestError(
                    f"emotion {name!r} is not in the template database; it holds: "
                    + ", ".join(self.names)
                )
            rows = np.flatnonzero(self.label == self.names.index(name))
            dist = np.linalg.norm(self.identity[rows] - identity, axis=1)
            nearest = np.argsort(dist, kind="stable")[:neighbours]
            weights = 1.0 / (dist[nearest] + 1e-3)
            out[k] = weights @ self.expression[rows[nearest]] / weights.sum()
        return out


def facs_database(
    catalogue: EmotionCatalogue, n_identities: int = 32, seed: int = 0
) -> TemplateDatabase:
    """Every catalogue emotion for the mean identity and ``n_identities`` sampled ones."""
    rng = np.random.default_rng(seed)
    identities = np.vstack([np.zeros(N_IDENTITY), rng.normal(size=(n_identities, N_IDENTITY))])
    names = tuple(catalogue.emotions)
    expressions = catalogue.expressions(names)
    return TemplateDatabase(
        identity=np.repeat(identities, len(names), axis=0).astype(np.float32),
        expression=np.tile(expressions, (len(identities), 1)).astype(np.float32),
        label=np.tile(np.arange(len(names), dtype=np.int32), len(identities)),
        names=names,
    )


def build_from_photos(
    folder: Path, fit: Callable[[bytes], np.ndarray], on_skip: Callable[[Path, str], None]
) -> TemplateDatabase:
    """A database from ``folder/<emotion>/*.{jpg,png,webp}``.

    fit: photo bytes → (162,) parameters (e.g. the face_mesh pipeline); it raises RequestError
    for a photo it cannot use, which is passed to ``on_skip(path, reason)`` and left out.
    Emotion names are the sub-folder names with "_" read as a space.
    """
    names = sorted(p.name.replace("_", " ") for p in folder.iterdir() if p.is_dir())
    identity, expression, label = [], [], []
    for k, name in enumerate(names):
        for photo in sorted((folder / name.replace(" ", "_")).iterdir()):
            if photo.suffix.lower() not in PHOTO_SUFFIXES:
                continue
            try:
                params = fit(photo.read_bytes())
            except RequestError as exc:
                on_skip(photo, str(exc))
                continue
            identity.append(params[ID_SLICE])
            expression.append(params[EXPR_SLICE])
            label.append(k)
    if not label:
        raise ValueError(f"no usable photos under {folder}")
    return TemplateDatabase(
        np.asarray(identity, np.float32),
        np.asarray(expression, np.float32),
        np.asarray(label, np.int32),
        tuple(names),
    )
