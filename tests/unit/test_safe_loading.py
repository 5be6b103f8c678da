"""No unsafe loading in the tracked Python files: nothing that can run code hidden in a file or a
request.

Rules (checked on the syntax tree, so comments, docstrings and ``module.eval()`` do not count):

- ``np.load`` only with ``allow_pickle=False``; ``torch.load`` only with ``weights_only=True``;
- no ``pickle`` (nor dill, shelve, joblib, cloudpickle): no import, no use;
- no builtin ``eval`` or ``exec``;
- ``yaml.load`` only with a safe loader; no ``yaml.unsafe_load``;
- in code that runs in the server (``reenact/``, ``model_repository/``): no ``shell=True``, no
  ``os.system`` or ``os.popen``.

The checker is tested on files that break each rule and on files that follow them.
"""

from __future__ import annotations

import ast
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from reenact.assets import REPO_ROOT

PICKLE_MODULES = frozenset(
    {"pickle", "cPickle", "_pickle", "dill", "shelve", "joblib", "cloudpickle"}
)
SERVER_CODE = ("reenact/", "model_repository/")
SAFE_YAML_LOADERS = ("SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader")
LOADERS_OF = {"numpy": "np.load", "torch": "torch.load", "yaml": "yaml.load"}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}"


def dotted_name(node: ast.expr) -> str:
    """``np.load`` for the expression ``np.load``; "" for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def keyword_is(call: ast.Call, name: str, value: object) -> bool:
    """Whether ``call`` passes ``name=value`` with ``value`` a literal constant."""
    return any(
        kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value is value
        for kw in call.keywords
    )


def _safe_yaml(call: ast.Call) -> bool:
    loaders = [kw.value for kw in call.keywords if kw.arg == "Loader"] + call.args[1:2]
    return any(dotted_name(loader).endswith(SAFE_YAML_LOADERS) for loader in loaders)


def _call_rule(call: ast.Call, server_code: bool) -> str | None:
    name = dotted_name(call.func)
    if name in ("np.load", "numpy.load") and not keyword_is(call, "allow_pickle", False):
        return f"{name} without allow_pickle=False"
    if name == "torch.load" and not keyword_is(call, "weights_only", True):
        return "torch.load without weights_only=True"
    if name in ("eval", "exec"):
        return f"builtin {name}()"
    if name in ("yaml.unsafe_load", "yaml.unsafe_load_all"):
        return name
    if name in ("yaml.load", "yaml.load_all") and not _safe_yaml(call):
        return f"{name} without a SafeLoader"
    if server_code and name in ("os.system", "os.popen"):
        return f"{name} in server code"
    if server_code and any(
        kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and not kw.value.value)
        for kw in call.keywords
    ):
        return "shell=True in server code"
    return None


def _import_rule(node: ast.Import | ast.ImportFrom) -> str | None:
    if isinstance(node, ast.Import):
        modules = [alias.name for alias in node.names]
    else:
        modules = [node.module or ""]
        root = modules[0].split(".")[0]
        if root in LOADERS_OF and any(alias.name == "load" for alias in node.names):
            return f"from {root} import load: call {LOADERS_OF[root]} with its safe argument"
    pickled = [m for m in modules if m.split(".")[0] in PICKLE_MODULES]
    return f"imports {pickled[0]}" if pickled else None


def violations_in(source: str, path: str) -> list[Violation]:
    """The rules ``source`` (the text of the file at ``path``, relative to the root) breaks."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [Violation(path, exc.lineno or 0, "does not parse, so cannot be checked")]
    server_code = path.startswith(SERVER_CODE)
    found = []
    for node in ast.walk(tree):
        rule = None
        if isinstance(node, ast.Call):
            rule = _call_rule(node, server_code)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            rule = _import_rule(node)
        elif isinstance(node, ast.Attribute) and dotted_name(node.value) in PICKLE_MODULES:
            rule = f"uses {dotted_name(node)}"
        if rule is not None:
            found.append(Violation(path, node.lineno, rule))
    return found


def violations_under(root: Path, paths: list[str]) -> list[Violation]:
    found = []
    for path in paths:
        found += violations_in((root / path).read_text(encoding="utf-8"), path)
    return found


def tracked_python_files(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "*.py"], cwd=root, capture_output=True, check=True
    )
    return [p for p in listed.stdout.decode().split("\0") if p and (root / p).is_file()]


def test_the_tracked_tree_loads_nothing_unsafely():
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = tracked_python_files(REPO_ROOT)
    assert len(paths) > 50 and "reenact/image_codec.py" in paths  # the listing works
    found = violations_under(REPO_ROOT, paths)
    assert not found, "\n".join(map(str, found))


BREAKING = [
    ("a = np.load(path)", "np.load without allow_pickle=False"),
    ("a = numpy.load(path, allow_pickle=True)", "numpy.load without allow_pickle=False"),
    ("m = torch.load(path)", "torch.load without weights_only=True"),
    ("m = torch.load(path, weights_only=False)", "torch.load without weights_only=True"),
    ("import pickle", "imports pickle"),
    ("import dill as d", "imports dill"),
    ("from pickle import loads", "imports pickle"),
    ("data = pickle.loads(blob)", "uses pickle.loads"),
    ("from numpy import load", "from numpy import load"),
    ("x = eval(text)", "builtin eval()"),
    ("exec(code)", "builtin exec()"),
    ("c = yaml.load(text)", "yaml.load without a SafeLoader"),
    ("c = yaml.load(text, Loader=yaml.FullLoader)", "yaml.load without a SafeLoader"),
    ("c = yaml.unsafe_load(text)", "yaml.unsafe_load"),
    ("subprocess.run(cmd, shell=True)", "shell=True in server code"),
    ("subprocess.Popen(cmd, shell=flag)", "shell=True in server code"),
    ("os.system('ls')", "os.system in server code"),
    ("def f(:\n    pass", "does not parse"),
]
FOLLOWING = [
    "a = np.load(path, allow_pickle=False)",
    "with numpy.load(path, allow_pickle=False) as z:\n    pass",
    "m = torch.load(path, map_location='cpu', weights_only=True)",
    "m = torch.jit.load(path)",
    "model.eval()",
    "self.net.eval().to('cpu')",
    "c = yaml.safe_load(text)",
    "c = yaml.load(text, Loader=yaml.SafeLoader)",
    "c = yaml.load(text, yaml.CSafeLoader)",
    "subprocess.run(['ls', '-l'], check=True)",
    "subprocess.run(cmd, shell=False)",
    '"""No pickles here: np.load(x) and eval(y) in a docstring."""',
    "# import pickle",
]


@pytest.mark.parametrize(("source", "rule"), BREAKING, ids=[rule for _, rule in BREAKING])
def test_the_checker_finds_each_violation_in_a_file(tmp_path, source, rule):
    path = "reenact/serving/hostile_example.py"  # server code, so every rule applies
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text("import os\nimport subprocess\n\n" + source + "\n")
    found = violations_under(tmp_path, [path])
    assert [v.rule.startswith(rule) for v in found] == [True], found
    assert found[0].line == 4 or rule == "does not parse"


@pytest.mark.parametrize("source", FOLLOWING)
def test_the_checker_passes_safe_code(tmp_path, source):
    path = "reenact/serving/safe_example.py"
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(source + "\n")
    assert violations_under(tmp_path, [path]) == []


def test_shell_is_allowed_outside_server_code():
    source = "subprocess.run('make demo', shell=True)\n"
    assert violations_in(source, "clients/tool.py") == []
    assert [v.rule for v in violations_in(source, "reenact/tool.py")] == [
        "shell=True in server code"
    ]


def test_the_checker_reads_a_git_listing(tmp_path):
    """The tree test's own path: a violation in a tracked file of a fresh repository is found."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "loader.py").write_text("import numpy as np\nx = np.load('a.npy')\n")
    (tmp_path / "notes.txt").write_text("np.load('a.npy')\n")
    subprocess.run(["git", "add", "loader.py", "notes.txt"], cwd=tmp_path, check=True)
    paths = tracked_python_files(tmp_path)
    assert paths == ["loader.py"]
    assert [str(v) for v in violations_under(tmp_path, paths)] == [
        "loader.py:2: np.load without allow_pickle=False"
    ]
