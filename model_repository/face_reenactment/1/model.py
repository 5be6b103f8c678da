"""face_reenactment: the public endpoint (contract in README.md, "API")."""

import contextlib
import ctypes
from pathlib import Path

import numpy as np
import torch

from reenact.morphable import MorphableModel
from reenact.postprocess import PostprocessConfig
from reenact.preprocess import PreprocessConfig
from reenact.reenactment import Reenactment, ReenactmentConfig
from reenact.reenactors import check_model_file, get_mode
from reenact.serving import backend
from reenact.serving.params import from_model_config

OPTIONAL_INPUTS = (
    "EMOTIONS",
    "INTENSITY",
    "HEAD_POSE",
    "EXPRESSION",
    "OUTPUT_FORMAT",
    "PASTE_BACK",
    "FACE_INDEX",
)


def release_freed_heap():
    """Hand the heap freed during initialize back to the kernel: the morphable model's arrays
    (about 70 MB) are garbage once the renderer has copied the vertices it draws, and the server's
    MALLOC_TRIM_THRESHOLD_ (reenact.serving.runtime) would otherwise keep them resident."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def predict_mesh(crop):
    out = backend.bls(
        "mesh_predictor",
        {"LANDMARK_CROP__0": crop},
        ["CROP_PARAMS__0", "CROP_LANDMARKS__1", "FACE_PRESENCE__2"],
    )
    presence = float(out["FACE_PRESENCE__2"].reshape(-1)[0])
    return out["CROP_PARAMS__0"][0], out["CROP_LANDMARKS__1"][0], presence


def reenact(canvas, source_render, target_render, targets):
    inputs = {
        "SOURCE_CANVAS__0": canvas,
        "SOURCE_RENDER__1": source_render,
        "TARGET_RENDER__2": target_render,
        "TARGET_PARAMS__3": targets,
    }
    return backend.bls("reenactor", inputs, ["REENACTED__0"])["REENACTED__0"]


class TritonPythonModel:
    def initialize(self, args):
        model_config = backend.parse_model_config(args)
        config = from_model_config(ReenactmentConfig, model_config)
        # face_preprocess's and face_postprocess's steps run in this process, with their settings
        preprocess = from_model_config(PreprocessConfig, model_config, section="preprocess")
        postprocess = from_model_config(PostprocessConfig, model_config, section="postprocess")
        torch.set_num_threads(config.torch_threads)
        # a learned reenactor_mode must find its trained model beside this one: fail the load
        # now, saying what to train, rather than every request later
        reenactor_dir = Path(args["model_repository"]).parent / "reenactor"
        check_model_file(get_mode(config.reenactor_mode), reenactor_dir)
        self.reenactment = Reenactment(
            config, MorphableModel.load(), predict_mesh, reenact, preprocess, postprocess
        )
        release_freed_heap()

    def execute(self, requests):
        return backend.handle_requests(requests, self._run)

    def _run(self, request):
        image = backend.single_bytes(backend.required_input(request, "IMAGE"), "IMAGE")
        options = self.reenactment.options.parse(
            **{name.lower(): backend.optional_input(request, name) for name in OPTIONAL_INPUTS}
        )
        out = self.reenactment(image, options)
        return {
            "IMAGES": np.array(out.images, dtype=object),
            "EMOTIONS": np.array([n.encode() for n in out.names], dtype=object),
            "TARGET_PARAMS": out.target_params,
            "SOURCE_PARAMS": out.source_params,
            "FACE_BOX": out.face_box,
        }
