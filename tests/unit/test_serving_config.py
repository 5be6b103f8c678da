"""Typed parameters, the local repository builder, and the committed configs."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from reenact.postprocess import PostprocessConfig
from reenact.preprocess import PreprocessConfig
from reenact.reenactment import ReenactmentConfig
from reenact.serving import local_repo
from reenact.serving.params import (
    REPOSITORY_PARAMETERS,
    ParameterError,
    from_model_config,
    from_strings,
)


@dataclass(frozen=True)
class Example:
    count: int = 1
    ratio: float = 0.5
    flag: bool = False
    names: tuple[str, ...] = ("a",)


def test_params_convert_to_field_types():
    got = from_strings(Example, {"count": "3", "ratio": "0.25", "flag": "true", "names": "x, y"})
    assert got == Example(count=3, ratio=0.25, flag=True, names=("x", "y"))
    assert from_strings(Example, {}) == Example()


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"count": "three"}, "count='three'"),
        ({"flag": "maybe"}, "flag='maybe'"),
        ({"nope": "1"}, "unknown parameters ['nope']"),
    ],
)
def test_params_refuse_bad_values(values, words):
    with pytest.raises(ParameterError) as info:
        from_strings(Example, values)
    assert words in str(info.value)


# each python model's typed parameters
MODEL_PARAMETERS = {
    "face_preprocess": PreprocessConfig,
    "face_postprocess": PostprocessConfig,
    "face_reenactment": ReenactmentConfig,
}


def shown_parameters(name: str, section: str = "") -> dict[str, str]:
    """The committed parameters of model ``name`` (of one section, without its prefix)."""
    config = local_repo.read_config(local_repo.PRODUCTION_REPOSITORY / name)
    shown = {}
    for key, value in config.parameters.items():
        owner, _, field = key.rpartition(".")
        if owner == section and key not in REPOSITORY_PARAMETERS:
            shown[field] = value.string_value
    return shown


@pytest.mark.parametrize("name", sorted(MODEL_PARAMETERS))
def test_committed_parameters_equal_the_dataclass_defaults(name):
    """config.pbtxt shows ops every tunable; its values must not drift from the code's defaults."""
    cls = MODEL_PARAMETERS[name]
    shown = shown_parameters(name)
    assert from_strings(cls, shown) == cls()
    assert set(shown) == {f.name for f in fields(cls)}


# steps face_reenactment runs in-process, with the parameters of the models that serve them
IN_PROCESS_STEPS = {"preprocess": "face_preprocess", "postprocess": "face_postprocess"}
OWN_SETTINGS = {"torch_threads"}  # face_reenactment's own setting applies to its steps


def test_every_section_of_a_committed_config_is_read():
    """A mistyped section (``preproces.max_pixels``) would be ignored by every reader."""
    for name in local_repo.model_names():
        config = local_repo.read_config(local_repo.PRODUCTION_REPOSITORY / name)
        sections = {key.rpartition(".")[0] for key in config.parameters if "." in key}
        assert sections <= set(IN_PROCESS_STEPS if name == "face_reenactment" else ()), name


@pytest.mark.parametrize("section", sorted(IN_PROCESS_STEPS))
def test_reenactment_runs_its_steps_with_the_served_steps_settings(section):
    """The same photo must give the same face in face_mesh and face_reenactment."""
    served = shown_parameters(IN_PROCESS_STEPS[section])
    carried = shown_parameters("face_reenactment", section)
    assert carried == {k: v for k, v in served.items() if k not in OWN_SETTINGS}


def test_every_python_model_has_its_parameters_listed_here():
    for name in local_repo.model_names():
        config = local_repo.read_config(local_repo.PRODUCTION_REPOSITORY / name)
        if config.backend == "python" and config.parameters:
            assert name in MODEL_PARAMETERS


def test_every_committed_config_parses_and_names_its_folder():
    names = local_repo.model_names()
    assert "face_preprocess" in names
    for name in names:
        assert local_repo.read_config(local_repo.PRODUCTION_REPOSITORY / name).name == name


def _write_model(root, name, text, files=()):
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(text)
    for f in files:
        (root / name / "1" / f).write_text("x")


def test_local_repository_turns_torchscript_into_the_python_runner(tmp_path):
    src = tmp_path / "src"
    _write_model(
        src,
        "net",
        'name: "net" platform: "pytorch_libtorch" max_batch_size: 4 '
        'input [{ name: "X__0" data_type: TYPE_FP32 dims: [3] }] '
        'output [{ name: "Y__0" data_type: TYPE_FP32 dims: [2] }] '
        "instance_group [{ kind: KIND_GPU count: 1 gpus: [0] }]",
        files=["model.pt"],
    )
    _write_model(src, "py", 'name: "py" backend: "python"', files=["model.py"])
    out = local_repo.build_local_repository(tmp_path / "out", source=src)
    net = local_repo.read_config(out / "net")
    assert net.backend == "python" and net.platform == ""
    assert net.parameters["torchscript_file"].string_value == "model.pt"
    assert [i.name for i in net.input] == ["X__0"] and [o.name for o in net.output] == ["Y__0"]
    assert net.max_batch_size == 4
    assert net.instance_group[0].kind == net.instance_group[0].KIND_CPU
    assert not net.instance_group[0].gpus
    assert "reenact.serving.torchscript_model" in (out / "net" / "1" / "model.py").read_text()
    assert (out / "net" / "1" / "model.pt").is_symlink()
    assert (out / "py" / "1" / "model.py").resolve() == (src / "py" / "1" / "model.py").resolve()


def test_local_repository_refuses_unknown_models(tmp_path):
    with pytest.raises(local_repo.RepositoryError, match="no such models"):
        local_repo.build_local_repository(tmp_path / "out", ["not_a_model"])


def test_dependencies_follow_ensembles_and_declared_bls_calls(tmp_path):
    src = tmp_path / "src"
    _write_model(src, "leaf", 'name: "leaf" backend: "python"', files=["model.py"])
    _write_model(src, "other", 'name: "other" backend: "python"', files=["model.py"])
    _write_model(
        src,
        "pipe",
        'name: "pipe" platform: "ensemble" ensemble_scheduling { step [ '
        '{ model_name: "leaf" model_version: -1 } ] }',
    )
    _write_model(
        src,
        "front",
        'name: "front" backend: "python" '
        'parameters { key: "depends_on" value { string_value: "pipe" } }',
        files=["model.py"],
    )
    assert local_repo.with_dependencies(["front"], src) == ["front", "leaf", "pipe"]
    out = local_repo.build_local_repository(tmp_path / "out", ["front"], src)
    assert local_repo.model_names(out) == ["front", "leaf", "pipe"]


def test_repository_parameters_are_not_model_tunables():
    config = {"parameters": {"depends_on": {"string_value": "x"}, "count": {"string_value": "2"}}}
    assert from_model_config(Example, config) == Example(count=2)


def test_sections_are_read_apart():
    raw = {"count": "2", "step.count": "5", "step.flag": "on"}
    config = {"parameters": {k: {"string_value": v} for k, v in raw.items()}}
    assert from_model_config(Example, config) == Example(count=2)
    assert from_model_config(Example, config, section="step") == Example(count=5, flag=True)
    assert from_model_config(Example, config, section="other") == Example()
