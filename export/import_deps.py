"""Make dependencies of an export: every file of this repository the export's module imports.

    python -m export.import_deps export.build_reenactor model_repository/reenactor/1/model.pt \\
        --stamp .venv/.stamps/pnccrender > build/deps/reenactor.d

imports the module and writes one make rule: the target (and the rule file itself) depend on
every Python file of the repository that ended up imported, on the package data of
``reenact/data``, and on ``--stamp`` when the compiled rasterizer ``pnccrender`` (installed, not a
repository file) was imported, so a change to anything the export runs rebuilds its output.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = REPO_ROOT / "reenact" / "data"
EXCLUDED = (".venv", "build")  # installed packages and build outputs are not sources


def repository_imports(module: str) -> list[Path]:
    """The repository's Python files loaded by importing ``module``, sorted, relative."""
    importlib.import_module(module)
    files = set()
    for loaded in list(sys.modules.values()):
        path = getattr(loaded, "__file__", None)
        if not path or not Path(path).is_absolute():  # e.g. torch's virtual "_ops.py"
            continue
        path = Path(path).resolve()
        if path.is_relative_to(REPO_ROOT) and path.parts[len(REPO_ROOT.parts)] not in EXCLUDED:
            files.add(path.relative_to(REPO_ROOT))
    return sorted(files)


def rule(module: str, target: str, rule_file: str, stamp: str | None) -> str:
    """The make rule ``target rule_file: prerequisites``."""
    prerequisites = [str(p) for p in repository_imports(module)]
    prerequisites += sorted(str(p.relative_to(REPO_ROOT)) for p in PACKAGE_DATA.glob("*.json"))
    if stamp and "pnccrender" in sys.modules:
        prerequisites.append(stamp)
    return f"{target} {rule_file}: " + " \\\n  ".join(prerequisites) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="e.g. export.build_reenactor")
    parser.add_argument("target", help="the file the export writes")
    parser.add_argument("--rule-file", default="", help="the .d file this rule goes to")
    parser.add_argument("--stamp", help="the make target that installs pnccrender")
    args = parser.parse_args(argv)
    sys.stdout.write(rule(args.module, args.target, args.rule_file, args.stamp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
