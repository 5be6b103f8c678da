"""Property-based tests of face_reenactment's request validation (reenact.reenactment.OptionParser).

Whatever tensors a client sends for the optional inputs, the parser either returns options
inside the contract or raises RequestError (INVALID_ARG with a message); never another exception.
The tensors are what Triton hands over: numpy arrays of the declared dtype (FP32, INT32, BOOL,
BYTES as object arrays of bytes), of any shape.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reenact.emotions import load_catalogue
from reenact.errors import RequestError
from reenact.morphable import N_EXPRESSION, MorphableModel
from reenact.reenactment import OUTPUT_FORMATS, OptionParser, ReenactmentConfig

CONFIG = ReenactmentConfig()
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine: CI stays stable
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def parser() -> OptionParser:
    return OptionParser(CONFIG, load_catalogue(MorphableModel.load().expression_names))


def shapes(max_dims: int = 2, max_side: int = 40):
    return hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side)


floats = hnp.arrays(
    np.float32, shapes(), elements=st.floats(width=32, allow_nan=True, allow_infinity=True)
)
ints = hnp.arrays(np.int32, shapes(1, 3), elements=st.integers(-(2**31), 2**31 - 1))
bools = hnp.arrays(np.bool_, shapes(1, 3))
names = st.one_of(
    st.sampled_from(["happy", "sad", "Sadly_Angry", " awed ", "neutral", "joyful", ""]),
    st.text(max_size=80),
)
name_bytes = st.one_of(names.map(lambda n: n.encode("utf-8")), st.binary(max_size=80))
byte_lists = st.lists(name_bytes, min_size=0, max_size=40).map(
    lambda items: np.array(items, dtype=object)
)
expressions = st.one_of(
    floats,
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(0, 40), st.just(N_EXPRESSION)),
        elements=st.floats(-0.5, 1.5, width=32),
    ),
)


def optional(strategy):
    return st.one_of(st.none(), strategy)


def _check(options) -> None:
    """The contract of a parsed request."""
    count = len(options.names)
    assert 1 <= count <= CONFIG.max_targets
    assert 0.0 <= options.intensity <= CONFIG.max_intensity
    assert options.head_pose_deg.shape == (3,) and np.isfinite(options.head_pose_deg).all()
    assert (np.abs(options.head_pose_deg) <= np.asarray(CONFIG.max_head_pose_deg)).all()
    assert options.output_format in OUTPUT_FORMATS
    assert options.face_index is None or options.face_index >= 0
    if options.expressions is not None:
        assert options.expressions.shape == (count, N_EXPRESSION)
        assert np.isfinite(options.expressions).all()
        assert options.expressions.min() >= 0.0 and options.expressions.max() <= 1.0


@SETTINGS
@given(
    emotions=optional(byte_lists),
    intensity=optional(floats),
    head_pose=optional(floats),
    output_format=optional(byte_lists),
    paste_back=optional(bools),
    face_index=optional(ints),
)
def test_any_options_are_parsed_into_the_contract_or_refused(
    parser, emotions, intensity, head_pose, output_format, paste_back, face_index
):
    try:
        options = parser.parse(
            emotions=emotions,
            intensity=intensity,
            head_pose=head_pose,
            output_format=output_format,
            paste_back=paste_back,
            face_index=face_index,
        )
    except RequestError as error:
        assert str(error)  # a message a person can act on, never empty
        return
    _check(options)


@SETTINGS
@given(expression=expressions, intensity=optional(floats))
def test_any_expression_rows_are_parsed_into_the_contract_or_refused(parser, expression, intensity):
    try:
        options = parser.parse(expression=expression, intensity=intensity)
    except RequestError as error:
        assert str(error)
        return
    _check(options)
    assert options.names == tuple(f"expression_{k}" for k in range(len(options.names)))
