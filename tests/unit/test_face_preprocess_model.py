"""face_preprocess/1/model.py in-process, with a fake triton_python_backend_utils."""

from __future__ import annotations

import numpy as np
import pytest

from reenact.serving.params import ParameterError
from tests import images
from tests.unit import fake_pb_utils as fake


@pytest.fixture
def pb(monkeypatch):
    return fake.install(monkeypatch)


def request(pb, data: bytes):
    return pb.InferenceRequest([pb.Tensor("IMAGE", np.array([data], dtype=object))])


def test_batch_with_a_bad_request_answers_each_on_its_own(pb):
    model = fake.load_model("face_preprocess")
    good = images.encode(images.astronaut(), "PNG")
    responses = model.execute([request(pb, good), request(pb, b"junk"), request(pb, good)])
    assert [r.has_error() for r in responses] == [False, True, False]
    assert responses[1].error().code() == pb.TritonError.INVALID_ARG
    assert "JPEG, PNG or WebP" in responses[1].error().message()
    np.testing.assert_array_equal(responses[0].output("DECODED_IMAGE"), images.astronaut())
    assert responses[2].output("IMAGE_SIZE").tolist() == [512, 512]


def test_pixel_limit_comes_from_config(pb):
    model = fake.load_model("face_preprocess", {"max_pixels": "1000"})
    (response,) = model.execute([request(pb, images.encode(images.astronaut(), "PNG"))])
    assert response.has_error()
    assert "262144 pixels; the limit is 1000" in response.error().message()


def test_missing_input_is_invalid_arg(pb):
    model = fake.load_model("face_preprocess")
    (response,) = model.execute([pb.InferenceRequest([])])
    assert response.error().code() == pb.TritonError.INVALID_ARG
    assert "missing input IMAGE" in response.error().message()


def test_unknown_parameter_fails_at_load(pb):
    with pytest.raises(ParameterError, match="unknown parameters \\['max_pixel'\\]"):
        fake.load_model("face_preprocess", {"max_pixel": "10"})
