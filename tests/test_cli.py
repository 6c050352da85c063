"""The scfguess command: run, models, demo, threads, and one-sentence exit-2 errors for bad input."""

import io
import json
import re
import shutil

import pytest

from scfguess import cli
from scfguess import scf as scf_module
from scfguess.model import registry
from scfguess.errors import ModelNotInstalledError
from scfguess.structures import Structure
from stub_models import save_tiny_model

FAST = ["--basis", "sto-3g", "--grids-level", "1"]
WATER_XYZ = "3\ncharge=0 spin=0\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A model directory with an untrained tiny model (H, C, O) as default."""
    import torch

    torch.manual_seed(0)  # the same untrained model in every session
    folder = tmp_path_factory.mktemp("models")
    save_tiny_model(folder)
    return folder


@pytest.fixture()
def models(tiny_models, monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_models))
    return tiny_models


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(argv):
    out = io.StringIO()
    code = cli.main(argv, out=out)
    return code, out.getvalue()


def test_run_with_comparison(tmp_path, models, capsys):
    code, out = run(["run", write(tmp_path, "water.xyz", WATER_XYZ), *FAST, "--model", "tiny", "--compare", "minao"])
    assert code == 0, capsys.readouterr().err
    lines = out.splitlines()
    assert "water: H2O, 3 atoms, charge 0, spin 0, PBE/sto-3g" in lines[0] and "model tiny" in lines[0]
    ml, minao = (line.split() for line in lines[2:4])
    assert ml[0] == "ml" and minao[0] == "minao" and ml[2] == minao[2] == "yes"
    assert float(ml[3]) == pytest.approx(float(minao[3]), abs=1e-7)  # conv_tol 1e-9, grid level 1
    assert lines[4].startswith("  ml guess: inference") and "cycle(s) saved" in lines[5]


def test_charge_and_spin_options_override_the_file(tmp_path, models):
    code, out = run(["run", write(tmp_path, "w.xyz", WATER_XYZ), *FAST, "--model", "tiny", "--charge", "1",
                     "--spin", "1"])
    assert code == 0 and "charge 1, spin 1" in out


def test_models_lists_installed_models(models):
    code, out = run(["models"])
    assert code == 0
    assert out.startswith("tiny (default): format 1") and "elements H C O" in out and str(models) in out
    assert "  trained on neutral, closed-shell molecules of the listed elements\n" in out


def test_models_reports_each_broken_model_and_lists_the_others(tmp_path, tiny_models, monkeypatch):
    """A malformed metadata.json or corrupt weights make that model UNUSABLE; the command still lists all."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    shutil.copytree(folder / "tiny", folder / "badjson")
    (folder / "badjson" / registry.METADATA_FILE).write_text('{"format_version": 1, "sha')
    shutil.copytree(folder / "tiny", folder / "corrupt")
    weights = folder / "corrupt" / registry.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-64])
    monkeypatch.setenv(registry.ENV_VAR, str(folder))
    code, out = run(["models"])
    assert code == 0
    lines = {line.split(":")[0]: line for line in out.splitlines() if not line.startswith("  ")}
    assert lines["badjson"].startswith("badjson: UNUSABLE: cannot read ") and "badjson/metadata.json" in out
    assert "line 1 column" in lines["badjson"]
    assert lines["corrupt"].startswith("corrupt: UNUSABLE: sha256 of weights.pt") and "corrupt" in lines["corrupt"]
    assert lines["tiny (default)"].startswith("tiny (default): format 1")


def test_demo_with_the_installed_default_or_the_oracle(monkeypatch, models):
    water = Structure("water", [8, 1, 1], [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])
    monkeypatch.setattr(cli, "demo_structure", lambda: water)
    code, out = run(["demo"])
    assert code == 0 and "model tiny" in out and "ml vs minao" in out

    def no_model():
        raise ModelNotInstalledError("no density model is installed.")

    monkeypatch.setattr(registry, "default_model_name", no_model)
    code, out = run(["demo"])
    assert code == 0 and out.startswith("no density model is installed. Showing the oracle guess")
    assert "oracle vs minao" in out


def test_bundled_demo_molecule_is_package_data():
    aspirin = cli.demo_structure()
    assert aspirin.formula == "C9H8O4" and aspirin.charge == 0 and aspirin.spin == 0


def test_threads_follow_omp_num_threads(monkeypatch):
    import torch
    from pyscf import lib

    before = lib.num_threads(), torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert cli.set_threads() == 1 and torch.get_num_threads() == 1 and lib.num_threads() == 1
    finally:
        lib.num_threads(before[0])
        torch.set_num_threads(before[1])
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be a positive integer"):
        cli.set_threads()


PERIODIC = ('3\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            "O 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")


@pytest.mark.parametrize("name, text, extra, match", [
    ("nh3.xyz", "4\n\nN 0 0 0\nH 0 0.94 0.38\nH 0.81 -0.47 0.38\nH -0.81 -0.47 0.38\n", [],
     r"N not covered by the density model tiny \(elements H, C, O\)"),
    ("xe.xyz", "1\n\nXe 0 0 0\n", ["--basis", "6-31g"], "Xe not covered by the basis set '6-31g'"),
    ("w.xyz", WATER_XYZ, ["--xc", "nonsense"], "unknown functional 'nonsense'"),
    ("w.xyz", WATER_XYZ, ["--basis", "no-such-basis"], "unknown basis set 'no-such-basis'"),
    ("w.xyz", WATER_XYZ, ["--charge", "1"], "spin 0 .* impossible with 9 electrons"),
    ("cation.xyz", WATER_XYZ.replace("charge=0", "charge=1"), [], "spin 0 .* impossible with 9 electrons"),
    ("w.xyz", WATER_XYZ, ["--spin", "12"], "spin 12 .* needs more electrons than the 10 it has"),
    ("w.xyz", WATER_XYZ, ["--charge", "-30"], "charge -30, more extra electrons than it can bind"),
    ("w.xyz", WATER_XYZ, ["--charge", "8"], "charge 8, more than its 8 valence electrons allow"),
    ("nh4.xyz", "5\n\nN 0 0 0\nH 0.63 0.63 0.63\nH -0.63 -0.63 0.63\nH -0.63 0.63 -0.63\nH 0.63 -0.63 -0.63\n",
     [], "spin 0 .* impossible with 11 electrons .*parity"),
    ("w.xyz", WATER_XYZ, ["--conv-tol", "-1"], "--conv-tol must be positive, got -1.0"),
    ("w.xyz", WATER_XYZ, ["--max-cycle", "-3"], "--max-cycle must be at least 1, got -3"),
    ("w.xyz", WATER_XYZ, ["--chkfile", "no-such-folder/w.chk"], "cannot write --chkfile .* folder 'no-such-folder'"),
    ("empty.xyz", "", [], "is empty"),
    ("truncated.xyz", WATER_XYZ.rsplit("\n", 2)[0], [], "cannot read .* as \\(extended\\) XYZ"),
    ("letters.xyz", WATER_XYZ.replace("0.7572", "abc"), [], "cannot read .* as \\(extended\\) XYZ"),
    ("nan.xyz", WATER_XYZ.replace("0.7572", "nan"), [], "NaN or infinite coordinates"),
    ("inf.xyz", WATER_XYZ.replace("0.7572", "inf"), [], "NaN or infinite coordinates"),
    ("same.xyz", WATER_XYZ.replace("-0.7572", "0.7572"), [], "atoms 1 and 2 at the same position"),
    ("periodic.xyz", PERIODIC, [], "is periodic"),
    ("w.txt", WATER_XYZ, [], "unknown file type"),
    ("w.xyz", WATER_XYZ, ["--compare", "random"], "unknown guess 'random' for --compare"),
    ("w.xyz", WATER_XYZ, ["--compare", "chk"], "unknown guess 'chk' for --compare"),
    ("w.xyz", WATER_XYZ, ["--model", "no-such-model"], "density model 'no-such-model' not found"),
    ("w.xyz", WATER_XYZ, ["--grids-level", "fine"], "invalid int value: 'fine'"),
    ("w.xyz", WATER_XYZ, ["--grids-level", "10"], "grids level must be between 0 and 9, got 10"),
    ("w.xyz", WATER_XYZ, ["--grids-level", "-1"], "grids level must be between 0 and 9, got -1"),
])
def test_bad_input_exits_2_with_one_sentence(tmp_path, models, capsys, name, text, extra, match, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run(["run", write(tmp_path, name, text), *FAST, *extra])
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    if err.startswith("usage: "):  # argparse refused the command line: the usage, then the sentence
        err = err[err.index("scfguess: error: "):]
    assert err.count("\n") == 1 and err.startswith("scfguess: error: ") and "Traceback" not in err
    assert re.search(match, err), err


def test_usage_errors_print_the_usage_line_and_name_the_right_help(capsys):
    for argv, prog in (([], "scfguess"), (["--bogus"], "scfguess"), (["run"], "scfguess run"),
                       (["run", "w.xyz", "--bogus"], "scfguess run")):
        assert run(argv)[0] == 2
        err = capsys.readouterr().err
        assert err.startswith(f"usage: {prog} ") and f"(see {prog} --help)" in err, err
        assert "scfguess scfguess" not in err and err.splitlines()[-1].startswith("scfguess: error: ")


def test_version(capsys):
    from scfguess import __version__

    assert run(["--version"])[0] == 0
    assert capsys.readouterr().out.startswith(f"scfguess {__version__} (PySCF ")


@pytest.fixture(scope="module")
def models_with_n(tmp_path_factory):
    """An untrained tiny model that covers H, C, N, O (ammonium, acetate)."""
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models_n")
    return save_tiny_model(folder, elements=("H", "C", "N", "O"), default=False)


NH4_PLAIN = "5\n\nN 0 0 0\nH 0.629 0.629 0.629\nH -0.629 -0.629 0.629\nH -0.629 0.629 -0.629\nH 0.629 -0.629 -0.629\n"


def test_closed_shell_ion_from_a_plain_xyz_with_charge_and_compare(tmp_path, models_with_n, capsys):
    """--charge is applied before the electron count is checked; both guesses reach the same NH4+ energy."""
    code, out = run(["run", write(tmp_path, "nh4.xyz", NH4_PLAIN), *FAST, "--model", str(models_with_n),
                     "--charge", "1", "--compare", "minao", "--json"])
    assert code == 0, capsys.readouterr().err
    (mol,) = json.loads(out)["molecules"]
    assert (mol["formula"], mol["charge"], mol["spin"]) == ("H4N", 1, 0)
    ml, minao = mol["runs"]
    assert ml["guess"] == "ml" and minao["guess"] == "minao" and ml["converged"] and minao["converged"]
    assert ml["energy"] == pytest.approx(minao["energy"], abs=1e-7)


def test_negative_spin_follows_pyscf(tmp_path, models, capsys):
    code, out = run(["run", write(tmp_path, "w.xyz", WATER_XYZ), *FAST, "--model", "tiny", "--spin", "-2",
                     "--json"])
    assert code == 0, capsys.readouterr().err
    (mol,) = json.loads(out)["molecules"]
    assert mol["spin"] == -2 and mol["runs"][0]["converged"]


def test_json_output_cartesian_basis_chkfile_and_molden(tmp_path, models, capsys):
    from pyscf.scf import chkfile
    from pyscf.tools import molden

    water = write(tmp_path, "w.xyz", WATER_XYZ)
    common = ["--basis", "6-31g*", "--grids-level", "1", "--model", "tiny", "--json"]
    code, out = run(["run", water, *common, "--cart", "--chkfile", str(tmp_path / "w.chk"),
                     "--molden", str(tmp_path / "w.molden")])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out)
    assert report["cart"] is True and report["converged"] is True and report["model"]["name"] == "tiny"
    assert report["settings"]["max_cycle"] == 50 and report["basis"] == "6-31g*"
    (mol,) = report["molecules"]
    assert mol["nao"] == 19  # 6d on O; 18 spherical
    (ml,) = mol["runs"]
    assert set(ml) >= {"cycles", "energy", "guess_seconds", "scf_seconds", "load_seconds", "inference_seconds"}
    mol_chk, scf = chkfile.load_scf(str(tmp_path / "w.chk"))
    assert mol_chk.cart and scf["e_tot"] == pytest.approx(ml["energy"], abs=1e-10)
    assert scf["mo_coeff"].shape == (19, 19) and mol["chkfile"] == str(tmp_path / "w.chk")
    loaded = molden.load(str(tmp_path / "w.molden"))
    assert loaded[0].natm == 3 and loaded[2].shape[0] == 19  # (mol, mo_energy, mo_coeff, ...)
    code, out = run(["run", water, *common])
    assert code == 0 and json.loads(out)["molecules"][0]["nao"] == 18


def test_orbitals_of_several_molecules_go_to_one_file_each(tmp_path, models, capsys):
    two = write(tmp_path, "two.xyz", WATER_XYZ.replace("charge=0", "name=a") + WATER_XYZ.replace("charge=0", "name=b"))
    code, out = run(["run", two, *FAST, "--model", "tiny", "--molden", str(tmp_path / "orb.molden")])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("orb*")) == ["orb-a.molden", "orb-b.molden"]
    assert "molden: " in out


def test_missing_file_and_too_large_for_memory(tmp_path, models, capsys, monkeypatch):
    assert run(["run", str(tmp_path / "nothing.xyz")])[0] == 2
    assert "does not exist" in capsys.readouterr().err
    aspirin = cli.resources.files("scfguess") / "examples" / cli.DEMO_FILE
    monkeypatch.setattr(scf_module, "available_memory_mb", lambda: 5.0)
    assert run(["run", str(aspirin)])[0] == 2
    err = capsys.readouterr().err
    assert "needs about 20 MB" in err and "more than the 5 MB available" in err and err.count("\n") == 1
    assert run(["run", str(aspirin), "--max-memory", "5"])[0] == 2
    assert "--max-memory must be at least 100 MB, got 5" in capsys.readouterr().err


def test_truncated_tampered_and_too_new_models(tmp_path, models, capsys):
    water = write(tmp_path, "w.xyz", WATER_XYZ)
    cases = {}
    folder = shutil.copytree(models / "tiny", tmp_path / "truncated")
    (folder / registry.WEIGHTS_FILE).write_bytes((folder / registry.WEIGHTS_FILE).read_bytes()[:-64])
    cases[folder] = "weights are corrupt or were replaced"
    folder = shutil.copytree(models / "tiny", tmp_path / "tampered")
    data = bytearray((folder / registry.WEIGHTS_FILE).read_bytes())
    data[-40] ^= 0xFF
    (folder / registry.WEIGHTS_FILE).write_bytes(bytes(data))
    cases[folder] = "weights are corrupt or were replaced"
    folder = shutil.copytree(models / "tiny", tmp_path / "newer")
    meta = json.loads((folder / registry.METADATA_FILE).read_text())
    meta["format_version"] = registry.FORMAT_VERSION + 1
    (folder / registry.METADATA_FILE).write_text(json.dumps(meta))
    cases[folder] = f"newer than the {registry.FORMAT_VERSION} this scfguess reads"
    folder = shutil.copytree(models / "tiny", tmp_path / "badjson")
    (folder / registry.METADATA_FILE).write_text('{"format_version": 1, "sha')
    cases[folder] = "cannot read density model .*badjson"
    folder = shutil.copytree(models / "tiny", tmp_path / "noweights")
    (folder / registry.WEIGHTS_FILE).unlink()
    cases[folder] = "cannot read density model .*noweights: No such file or directory"
    for folder, match in cases.items():
        assert run(["run", water, *FAST, "--model", str(folder)])[0] == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(match, err), err
