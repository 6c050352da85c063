"""The package's boundaries: which modules may import which (one home per concept, one guess pipeline)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder, forbidden", [
    ("scfguess/model", ("pyscf.scf", "pyscf.dft", "scfguess.density", "scfguess.scf", "scfguess.guess")),
    ("scfbench", ("scfguess.density.converter", "scfguess.density.convert", "scfguess.density_to_dm")),
    ("scfguess", ("scfbench", "workflows")),
])
def test_forbidden_imports(folder, forbidden):
    bad = [f"{path.relative_to(ROOT)} imports {name}" for path in _files(folder) for name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not bad, "; ".join(bad)


def test_one_predict_and_convert_composition():
    """Only scfguess/guess.py calls both the model and the converter."""
    composers = []
    for folder in ("scfguess", "scfbench", "workflows"):
        for path in _files(folder):
            text = path.read_text()
            predicts = ".predict(" in text or "predict_coefficients(" in text
            converts = "convert(" in text or "density_to_dm(" in text
            if predicts and converts:
                composers.append(str(path.relative_to(ROOT)))
    assert composers == ["scfguess/guess.py"]


def test_a_missing_extra_is_one_sentence_naming_it(monkeypatch, tmp_path, capsys):
    """Without RDKit (the bench extra) an SDF file and scfbench stop with one sentence, not a traceback."""
    import sys

    from scfbench import cli as bench_cli
    from scfguess import cli

    monkeypatch.setitem(sys.modules, "rdkit", None)
    monkeypatch.setitem(sys.modules, "rdkit.Chem", None)
    sdf = tmp_path / "m.sdf"
    sdf.write_text("\n")
    assert cli.main(["run", str(sdf)]) == 2
    assert bench_cli.main(["sets"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("pip install 'scfguess[bench]'" in line for line in err)
