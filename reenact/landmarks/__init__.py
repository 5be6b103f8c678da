"""Face detection (MediaPipe BlazeFace short and full range) and 468-point face mesh (FaceMesh).

The three TFLite networks of ``mediapipe==0.10.14`` (Apache-2.0) are re-implemented as PyTorch
modules (:mod:`.blazeface`, :mod:`.facemesh`) whose weights ``export/convert_mediapipe.py``
converts from the ``.tflite`` files that ``export/extract_mediapipe.py`` takes out of the wheel.
:mod:`.detection` holds the MediaPipe pre/post-processing (letterbox, anchors, weighted NMS, the
rotated face crop), :class:`.detection.FaceDetector` (both detectors, merged) and
:class:`.detection.FaceLandmarker`, the whole image → landmarks path.

Import from the submodules; this package module only names where the assets live and the
face-presence threshold (no torch here).
"""

from __future__ import annotations

from pathlib import Path

from reenact.assets import assets_dir

MEDIAPIPE_VERSION = "0.10.14"
"""The ``mediapipe`` wheel the ``.tflite`` files are taken from."""

MIN_FACE_PRESENCE = 0.5
"""Face-presence score (sigmoid of FaceMesh's face flag) from which a face counts as found, as in
MediaPipe. Here rather than in :mod:`.detection` so that face_postprocess reads it without
importing torch."""


def mediapipe_dir() -> Path:
    """``build/assets/mediapipe``: the extracted ``.tflite`` files and converted ``.pt`` weights."""
    return assets_dir() / "mediapipe"
