"""face_mesh (face_preprocess → mesh_predictor → face_postprocess) through a real tritonserver."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from reenact.pipeline import FaceMeshPipeline, as_arrays
from tests import images

pytestmark = pytest.mark.e2e

# The server runs torch with one thread, this process with two: float32 sums in another order
# differ by a few thousandths of a pixel on coordinates of hundreds of pixels.
ATOL = 5e-3
OUTPUTS = ("SOURCE_PARAMS", "IMAGE_PARAMS", "IMAGE_LANDMARKS", "CONFIDENCE", "FACE_BOX")


@pytest.fixture(scope="module")
def pipeline():
    return FaceMeshPipeline()


def face_mesh(client, data: bytes):
    module, conn = client
    image = module.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([data], dtype=object))
    outputs = [module.InferRequestedOutput(name) for name in OUTPUTS]
    result = conn.infer("face_mesh", [image], outputs=outputs)
    return {name: result.as_numpy(name) for name in OUTPUTS}


def test_served_parameters_equal_the_in_process_pipeline(client, pipeline):
    data = images.encode(images.astronaut(), "JPEG", quality=92)
    served = face_mesh(client, data)
    local = as_arrays(pipeline(data))
    for name in OUTPUTS:
        assert served[name].shape == local[name].shape, name
        np.testing.assert_allclose(served[name], local[name], rtol=1e-4, atol=ATOL, err_msg=name)
    assert served["CONFIDENCE"][0] > 0.9
    assert served["SOURCE_PARAMS"][100:155].max() <= 1.0


def test_photo_without_a_face_is_invalid_arg_and_server_goes_on(client):
    for photo in (skimage.data.coffee(), np.full((300, 300, 3), 128, np.uint8)):
        with pytest.raises(InferenceServerException) as info:
            face_mesh(client, images.encode(photo, "PNG"))
        assert str(info.value.status()) in ("StatusCode.INVALID_ARGUMENT", "400")
        assert "no face found" in info.value.message()
    assert face_mesh(client, images.encode(images.astronaut(), "PNG"))["CONFIDENCE"][0] > 0.9


def test_concurrent_requests_each_get_their_own_face(triton_server, pipeline):
    """Two different photos in flight at once: the dynamic batcher must not mix them up."""
    import concurrent.futures

    photos = [images.encode(images.astronaut(), "PNG"), images.encode(images.two_faces(), "PNG")]
    expected = [as_arrays(pipeline(p))["IMAGE_PARAMS"] for p in photos]

    def call(k: int) -> np.ndarray:
        with grpcclient.InferenceServerClient(triton_server.grpc_url) as conn:
            return face_mesh((grpcclient, conn), photos[k % 2])["IMAGE_PARAMS"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(12)))
    for k, got in enumerate(results):
        np.testing.assert_allclose(got, expected[k % 2], rtol=1e-4, atol=ATOL)
