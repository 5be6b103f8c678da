"""Template database: nearest-identity lookup, the FACS default, the photo-folder builder."""

from __future__ import annotations

import numpy as np
import pytest

from reenact.emotions import load_catalogue
from reenact.errors import RequestError
from reenact.morphable import N_PARAMS, MorphableModel
from reenact.templates import TemplateDatabase, build_from_photos, facs_database
from tests import images


def small_database() -> TemplateDatabase:
    identity = np.zeros((4, 100), np.float32)
    identity[1, 0] = identity[3, 0] = 5.0  # rows 1 and 3 belong to a person far from the mean
    expression = np.zeros((4, 55), np.float32)
    expression[:, 0] = [0.1, 0.9, 0.2, 0.8]
    return TemplateDatabase(identity, expression, np.array([0, 0, 1, 1], np.int32), ("a", "b"))


def test_lookup_takes_the_expression_of_the_nearest_identity():
    db = small_database()
    near_mean = db.lookup(np.zeros(100, np.float32), ["a", "b"], neighbours=1)
    far = np.zeros(100, np.float32)
    far[0] = 4.8
    near_far = db.lookup(far, ["b", "a"], neighbours=1)
    np.testing.assert_allclose(near_mean[:, 0], [0.1, 0.2])
    np.testing.assert_allclose(near_far[:, 0], [0.8, 0.9])
    blended = db.lookup(far, ["a"], neighbours=2)[0, 0]
    assert 0.1 < blended < 0.9 and blended > 0.8  # weighted towards the nearer row


def test_unknown_emotion_is_a_request_error():
    with pytest.raises(RequestError, match="'c' is not in the template database; it holds: a, b"):
        small_database().lookup(np.zeros(100, np.float32), ["c"])


def test_facs_database_round_trips_and_gives_the_catalogue(tmp_path):
    catalogue = load_catalogue(MorphableModel.load().expression_names)
    db = facs_database(catalogue, n_identities=3)
    db.save(tmp_path / "db.npz")
    loaded = TemplateDatabase.load(tmp_path / "db.npz")
    assert loaded.names == tuple(catalogue.emotions) and len(loaded.label) == 4 * 22
    got = loaded.lookup(np.random.default_rng(0).normal(size=100), ["sad", "happy"])
    np.testing.assert_allclose(got, catalogue.expressions(["sad", "happy"]), atol=1e-6)


def test_builder_reads_labelled_folders_and_skips_unusable_photos(tmp_path):
    for name in ("happy", "sadly_angry"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.png").write_bytes(images.encode(images.astronaut(), "PNG"))
    (tmp_path / "happy" / "notes.txt").write_text("ignored")
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"not a photo")

    def fit(data: bytes) -> np.ndarray:
        if not data.startswith(b"\x89PNG"):
            raise RequestError("IMAGE is not a JPEG, PNG or WebP image")
        params = np.zeros(N_PARAMS, np.float32)
        params[100] = 0.5
        return params

    skipped = []
    db = build_from_photos(tmp_path, fit, lambda path, why: skipped.append(path.name))
    assert db.names == ("happy", "sadly angry") and db.label.tolist() == [0, 1]
    assert skipped == ["broken.jpg"]
    np.testing.assert_allclose(db.lookup(np.zeros(100), ["sadly angry"])[0, 0], 0.5)
