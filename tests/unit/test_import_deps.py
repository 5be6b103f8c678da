"""export/import_deps.py: the make rules that tie exported models to what their exports run."""

from __future__ import annotations

import subprocess
import sys

from export.import_deps import REPO_ROOT

STAMP = ".venv/.stamps/pnccrender"


def rule_of(module: str) -> tuple[str, set[str]]:
    """(targets, prerequisites) of the rule written for ``module``, in a fresh interpreter (the
    test process has imported everything already)."""
    command = [sys.executable, "-m", "export.import_deps", module, "out.pt", "--rule-file"]
    command += ["deps.d", "--stamp", STAMP]
    text = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    targets, prerequisites = text.split(":", 1)
    return targets, {p.strip(" \\\n") for p in prerequisites.split("\\\n") if p.strip(" \\\n")}


def test_the_reenactor_rule_names_what_its_export_runs():
    targets, prerequisites = rule_of("export.build_reenactor")
    assert targets.split() == ["out.pt", "deps.d"]
    expected = {
        "export/build_reenactor.py",
        "reenact/morphable.py",  # imported through the renderer and the networks
        "reenact/reenactor.py",
        "reenact/reenactors/contract.py",
        "reenact/reenactors/neural.py",
        "reenact/neural/networks.py",
        STAMP,  # the geometric renderer imports the compiled rasterizer
    }
    assert expected <= prerequisites
    assert all((REPO_ROOT / p).is_file() for p in prerequisites - {STAMP})
    assert not any(p.startswith((".venv/lib", "build/")) for p in prerequisites)


def test_no_stamp_without_the_rasterizer():
    _, prerequisites = rule_of("export.fetch_ict")
    assert "export/fetch_ict.py" in prerequisites
    assert STAMP not in prerequisites
