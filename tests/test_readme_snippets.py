"""Execute the usage snippets: ```python blocks run as written, ```sh lines ``scfguess ...`` through cli.main.

The snippets are read from README.md and docs/usage.md.
"""

import io
import re
import shlex
import warnings
from pathlib import Path

import pytest

from scfguess import cli

ROOT = Path(__file__).resolve().parent.parent
WATER_XYZ = "3\ncharge=0 spin=0\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n"


SOURCES = (ROOT / "README.md", ROOT / "docs" / "usage.md")


def _blocks(language):
    text = "\n".join(path.read_text() for path in SOURCES)
    return [m.group(1) for m in re.finditer(rf"```{language}\n(.*?)```", text, flags=re.S)]


PYTHON = _blocks("python")
COMMANDS = [line for block in _blocks("sh") + _blocks("bash") for line in block.splitlines()
            if line.strip().startswith("scfguess ")]


def test_the_three_interfaces_are_shown():
    assert any("scfguess.apply(" in b for b in PYTHON) and any("SCFGuessCalculator" in b for b in PYTHON)
    assert any(c.split()[1] == "run" for c in COMMANDS)


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_snippet_runs_from_the_ml_guess(code, tmp_path, monkeypatch, capsys):
    """Each snippet runs and prints, and no ML guess in it fell back to minao (the snippets show the ML guess)."""
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace = {"__name__": "snippet"}
        exec(compile(code, "snippet", "exec"), namespace)
    fallbacks = [str(w.message) for w in caught if "ML guess failed" in str(w.message)]
    assert not fallbacks, f"the snippet fell back from the ML guess: {fallbacks[0]}"
    objects = list(namespace.values()) + [getattr(v, "calc", None) for v in namespace.values()]
    hooked = [o.scfguess_info["guess"] for o in objects if getattr(o, "scfguess_info", None)]
    calculated = [o.results["scf_guess"] for o in objects if "scf_guess" in (getattr(o, "results", None) or {})]
    assert all(g in ("ml", "previous", "extrapolate") for g in hooked + calculated), f"guesses used: {hooked + calculated}"
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("line", [pytest.param(c, marks=pytest.mark.slow) if " demo" in c else c for c in COMMANDS])
def test_command_snippet_runs(line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "water.xyz").write_text(WATER_XYZ)
    out = io.StringIO()
    assert cli.main(shlex.split(line, comments=True)[1:], out=out) == 0
    assert out.getvalue().strip()
