"""scfbench run/report: records, resumability after kill -9, JSON schema, metrics and error paths."""

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime

import pytest

from scfbench import jobs as jobs_module
from scfbench.cli import main
from scfbench.guesses import parse_guess
from scfbench.jobs import Job, run_job
from scfguess.scf import ScfSettings
from scfbench.metrics import RUN_KEYS, SUMMARY_KEYS, annotate, select_guesses, summarize
from scfbench.report import build_report, format_table, to_json
from scfguess.structures import Structure

SMALL_XYZ = ("3\nname=water\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n"
             "4\nname=ammonia\nN 0 0 0.1\nH 0.94 0 -0.2\nH -0.47 0.81 -0.2\nH -0.47 -0.81 -0.2\n")
FAST = ["--basis", "sto-3g", "--xc", "pbe", "--grids-level", "0"]
WATER = Structure("water", [8, 1, 1], [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])
HF = Structure("hf", [9, 1], [[0, 0, 0], [0, 0, 0.92]])
TINY_XYZ = "2\nname=h2\nH 0 0 0\nH 0 0 0.74\n2\nname=hf\nF 0 0 0\nH 0 0 0.92\n"


@pytest.fixture
def small_xyz(tmp_path):
    path = tmp_path / "small.xyz"
    path.write_text(SMALL_XYZ)
    return str(path)


def count(store):
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs").fetchone()


def test_job_records_hidden_builds_and_guess_quality():
    settings = ScfSettings(grids_level=0)
    records = {g: run_job(Job(HF, "sto-3g", "pbe", parse_guess(g), settings)) for g in ("minao", "pbe-first",
                                                                                      "oracle")}
    for r in records.values():
        assert r["status"] == "ok", r["error"]
        assert r["converged"] and r["cycles"] >= 1
        assert r["fock_builds"] == r["cycles"] + r["guess_fock_builds"]
        assert r["settings"]["conv_tol"] == 1e-9 and r["settings"]["max_cycle"] == 50
        assert r["settings"]["density_fit"] and r["settings"]["auxbasis_resolved"]
        assert r["versions"]["pyscf"] and r["versions"]["cores"] >= 1
        assert r["guess_gradient_norm"] >= 0 and r["guess_seconds"] >= 0 and r["scf_seconds"] > 0
        assert datetime.fromisoformat(r["started"]) <= datetime.fromisoformat(r["finished"])
        assert 0 < r["cpu_seconds"] <= 1.1 * r["total_seconds"] * r["versions"]["threads"]
    minao, pbe_first, oracle = records["minao"], records["pbe-first"], records["oracle"]
    assert minao["guess_fock_builds"] == 0
    assert pbe_first["guess_fock_builds"] == pbe_first["pbe_cycles"] >= 1 and pbe_first["cycles"] <= 2
    assert abs(pbe_first["guess_energy_error"]) < 1e-6  # the PBE solution is the target solution
    assert oracle["reference_cycles"] == minao["cycles"] and oracle["guess_fock_builds"] >= 1
    assert oracle["conversion_seconds"] == oracle["guess_seconds"]
    assert abs(minao["energy"] - oracle["energy"]) < 1e-4
    assert minao["guess_energy"] == pytest.approx(minao["energy"] + minao["guess_energy_error"])
    assert minao["guess_gradient_norm"] > 1e3 * pbe_first["guess_gradient_norm"]


def test_open_shell_records_hold_s2_and_every_start_reaches_the_same_state():
    """NH2 radical: ⟨S²⟩ is stored (near 0.75 for a doublet), the same from minao and the oracle; closed shells None.

    A bent radical: its lowest orbital-rotation Hessian eigenvalue is well above zero (0.09 Ha), so the stability
    verdict is not grid noise (linear OH has a zero mode, the unpaired electron turning between πx and πy, whose
    sign flips between PySCF releases)."""
    settings = ScfSettings(grids_level=0)
    radical = Structure("nh2", [7, 1, 1], [[0, 0, 0], [0, 0.80, 0.59], [0, -0.80, 0.59]], spin=1)
    records = {g: run_job(Job(radical, "sto-3g", "pbe", parse_guess(g), settings)) for g in ("minao", "oracle")}
    for r in records.values():
        assert r["status"] == "ok", r["error"]
        assert r["s2"] == pytest.approx(0.75, abs=0.02)
    assert records["oracle"]["s2"] == pytest.approx(records["minao"]["s2"], abs=1e-6)
    assert all(r["stable"] is True for r in records.values())  # the doublet ground state
    closed = run_job(Job(HF, "sto-3g", "pbe", parse_guess("minao"), settings))
    assert closed["s2"] is None and closed["stable"] is None
    unanalysed = Job(radical, "sto-3g", "pbe", parse_guess("minao"), settings, stability=False)
    assert unanalysed.key == Job(radical, "sto-3g", "pbe", parse_guess("minao"), settings).key  # same result
    record = run_job(unanalysed)
    assert record["s2"] == pytest.approx(records["minao"]["s2"], abs=1e-6) and record["stable"] is None


def test_job_key_covers_every_setting_and_model():
    base = Job(WATER, "sto-3g", "pbe", parse_guess("minao"), ScfSettings())
    variants = [Job(WATER, "sto-3g", "pbe", parse_guess("minao"), ScfSettings(conv_tol=1e-8)),
                Job(WATER, "sto-3g", "pbe", parse_guess("minao"), ScfSettings(density_fit=False)),
                Job(WATER, "def2-svp", "pbe", parse_guess("minao"), ScfSettings()),
                Job(WATER, "sto-3g", "pbe", parse_guess("sap"), ScfSettings()),
                Job(WATER, "sto-3g", "pbe", parse_guess("minao"), ScfSettings(), model_sha256="ab"),
                Job(Structure("water", [8, 1, 1], WATER.positions + 0.01), "sto-3g", "pbe", parse_guess("minao"))]
    keys = {base.key} | {v.key for v in variants}
    assert len(keys) == len(variants) + 1
    assert base.key == Job(WATER, "STO-3G", "PBE", parse_guess("minao"), ScfSettings()).key


def test_guess_labels_are_validated():
    assert parse_guess("ml:small").model == "small" and parse_guess("ml").model is None
    for bad in ("minao2", "ml:", "chk", "MINAO"):
        with pytest.raises(ValueError, match="guess"):
            parse_guess(bad)


def test_run_rerun_report_json_csv_plots(tmp_path, small_xyz, monkeypatch, capsys):
    real = jobs_module.make_guess

    def fails_for_ammonia(spec, mf, *args, **kwargs):
        if spec.kind == "huckel" and mf.mol.natm == 4:
            raise RuntimeError("boom")
        return real(spec, mf, *args, **kwargs)

    monkeypatch.setattr(jobs_module, "make_guess", fails_for_ammonia)
    store = str(tmp_path / "out" / "results.anything")
    argv = ["run", "--molecules", small_xyz, "--guess", "minao,sap,huckel", *FAST, "--out", store]
    assert main(argv) == 0
    assert count(store) == (6, 6)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == []  # no .refs without the oracle
    assert main(argv) == 0  # resume: nothing to do
    assert count(store) == (6, 6)
    assert "6 already in" in capsys.readouterr().err

    csv_path, plots = tmp_path / "runs.csv", tmp_path / "plots"
    assert main(["report", store, "--json", "--csv", str(csv_path), "--plot", str(plots)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"settings", "summary", "runs"}
    assert report["settings"]["conv_tol"] == 1e-9 and report["settings"]["grids_level"] == 0
    assert [s["guess"] for s in report["summary"]] == ["minao", "huckel", "sap"]
    for row in report["summary"]:
        assert list(row)[:len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
        assert 0 <= row["converged"] <= 1 and row["n"] == 2
    minao = report["summary"][0]
    assert minao["ric"] == 1 and minao["median_ratio"] == 1 and minao["same_energy"] == 1
    huckel = report["summary"][1]
    assert huckel["converged"] == 0.5 and huckel["failed"] == 1
    for run in report["runs"]:
        assert set(RUN_KEYS) <= set(run) and isinstance(run["converged"], bool) and "settings" in run
    failed = [r for r in report["runs"] if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"].startswith("RuntimeError: boom")
    assert failed[0]["cycles"] is None and failed[0]["delta_e"] is None
    assert len(csv_path.read_text().strip().splitlines()) == 7
    assert sorted(p.name for p in plots.iterdir()) == ["cycles_distribution.png", "ric_vs_atoms.png",
                                                       "wall_ratio_by_size.png", "wall_ratio_vs_atoms.png"]
    # several stores report as one; a store given twice counts once
    tiny = tmp_path / "tiny.xyz"
    tiny.write_text(TINY_XYZ)
    other = str(tmp_path / "other.sqlite")
    assert main(["run", "--molecules", str(tiny), "--guess", "minao,sap", *FAST, "--out", other]) == 0
    capsys.readouterr()
    assert main(["report", store, other, store, "--json"]) == 0
    summary = {s["guess"]: s["n"] for s in json.loads(capsys.readouterr().out)["summary"]}
    assert summary == {"minao": 4, "huckel": 2, "sap": 4}
    assert main(["report", store, other, "--json", "--guess", "sap"]) == 0
    assert {s["guess"] for s in json.loads(capsys.readouterr().out)["summary"]} == {"minao", "sap"}
    assert main(["report", store, "--guess", "oracle"]) == 2
    assert "no records of oracle" in capsys.readouterr().err
    assert main(["report", store]) == 0
    table = capsys.readouterr().out
    assert "RIC" in table and "all molecules have <=20 atoms" in table
    assert sum(line.startswith("guess ") for line in table.splitlines()) == 1  # one bin: the table once
    assert "failed runs (1;" in table and "ammonia / huckel / pbe/sto-3g: RuntimeError: boom" in table
    assert main(["report", store, "--csv", str(plots)]) == 2  # a folder where a file should go
    err = capsys.readouterr().err
    assert err.startswith("scfbench: error:") and "Is a directory" in err and "Traceback" not in err


def test_killed_run_resumes_without_lost_or_duplicate_records(tmp_path):
    store = tmp_path / "resume.sqlite"
    tiny_xyz = tmp_path / "tiny.xyz"
    tiny_xyz.write_text(TINY_XYZ)
    argv = ["run", "--molecules", str(tiny_xyz), "--guess", "minao,sap,huckel", *FAST, "--out", str(store)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "scfbench.cli", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                stored = count(store)[0]
            except sqlite3.OperationalError:
                stored = 0
            if stored >= 1:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = count(store)[0]
    assert 1 <= before < 6, "the run should have been killed midway"
    assert main(argv) == 0
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT molecule, guess, status FROM runs").fetchall()
    assert len(rows) == 6 and len(set(rows)) == 6
    assert all(status == "ok" for _, _, status in rows)


def _record(molecule, guess, cycles, converged=True, energy=-1.0, guess_s=0.1, scf_s=1.0, hidden=0, natoms=3,
            status="ok"):
    return {"key": f"{molecule}-{guess}", "molecule": molecule, "geometry_sha256": molecule, "natoms": natoms,
            "charge": 0, "spin": 0, "basis": "b", "xc": "x", "guess": guess, "status": status,
            "settings": {"max_cycle": 50, "conv_tol": 1e-9}, "cycles": cycles, "converged": converged,
            "energy": energy, "guess_seconds": guess_s, "scf_seconds": scf_s, "guess_fock_builds": hidden,
            "fock_builds": None if cycles is None else cycles + hidden}


def test_metrics_definitions():
    records = [
        _record("a", "minao", 10), _record("a", "g", 5, hidden=1, guess_s=0.2, scf_s=0.5),
        _record("b", "minao", 20, natoms=30), _record("b", "g", 50, converged=False, energy=-0.5, natoms=30),
        _record("c", "minao", 50, converged=False), _record("c", "g", 8),
        _record("d", "minao", 10), _record("d", "g", None, converged=False, energy=None, status="failed"),
    ]
    for record, gnorm in zip(records[1::2], (0.1, 0.4, None, 9.0)):  # the failed run's value is not used
        record["guess_gradient_norm"] = gnorm
    summary, by_size = summarize(annotate(records), tol=1e-6)
    g = next(s for s in summary if s["guess"] == "g")
    ratios = [0.5, 50 / 20, 50 / 10]  # c is excluded (minao did not converge); d failed -> max_cycle
    assert g["ric"] == pytest.approx(sum(ratios) / 3)
    assert g["median_ratio"] == pytest.approx(50 / 20)
    assert g["effective_ratio"] == pytest.approx((0.6 + 2.5 + 5.0) / 3)
    assert g["wall_ratio"] == pytest.approx(((0.7 / 1.1) + (1.1 / 1.1)) / 2)
    assert g["overhead_cycles"] == pytest.approx((0.2 / 0.1 + 0.1 / 0.05) / 2)
    assert g["guess_gradient_norm"] == pytest.approx(0.2)  # geometric mean of 0.1 and 0.4
    assert g["cycle_seconds"] == pytest.approx((0.5 / 5 + 1.0 / 50 + 1.0 / 8) / 3)  # the failed run has none
    assert g["converged"] == 0.5 and g["same_energy"] == pytest.approx(1 / 3)
    assert g["excluded"] == 1 and g["failed"] == 1 and g["n"] == 4
    assert {r["bin"] for r in by_size if r["guess"] == "g"} == {"<=20", "21-40"}
    text = to_json(build_report(records))
    assert "NaN" not in text
    report = json.loads(text)
    run_d = next(r for r in report["runs"] if r["molecule"] == "d" and r["guess"] == "g")
    assert run_d["delta_e"] is None and run_d["converged"] is False
    assert not math.isnan(next(s for s in report["summary"] if s["guess"] == "minao")["ric"])


def test_open_shell_at_the_same_energy_but_another_s2_is_not_the_same_state():
    records = [_record("a", "minao", 10), _record("a", "g", 5), _record("b", "minao", 10), _record("b", "g", 5)]
    for record, s2 in zip(records, (0.754, 0.757, 0.754, 0.80)):
        record["s2"] = s2
    g = next(s for s in summarize(annotate(records))[0] if s["guess"] == "g")
    assert g["same_energy"] == pytest.approx(0.5)  # b: |d<S^2>| = 0.046 > 0.01
    run = next(r for r in json.loads(to_json(build_report(records)))["runs"] if r["molecule"] == "b" and r["guess"] == "g")
    assert run["delta_s2"] == pytest.approx(0.046)


def test_report_names_open_shells_that_reached_another_state_with_their_stability():
    records = [_record("a", "minao", 10), _record("a", "g", 5), _record("b", "minao", 10),
               _record("b", "g", 7, energy=-0.9)]
    for record, stable in zip(records, (True, True, True, False)):
        record.update(spin=1, s2=0.754, stable=stable)
    text = format_table(build_report(records))
    assert "open shells converged to another state than minao's (1;" in text
    assert "b / g / x/b: dE +1.00e-01 Ha, d<S^2> +0.000; unstable (minao's: stable)" in text
    assert "  a / g" not in text


def test_report_warns_when_records_come_from_several_pyscf_versions():
    records = [_record("a", "minao", 10), _record("a", "g", 5), _record("b", "minao", 10), _record("b", "g", 7)]
    for record, version in zip(records, ("2.14.0", "2.14.0", "2.14.0", "2.15.0")):
        record["versions"] = {"pyscf": version}
    report = build_report(records)
    assert report["pyscf_versions"] == {"2.14.0": 3, "2.15.0": 1}
    assert "warning: records from several PySCF versions: 2.14.0 (3 records), 2.15.0 (1 record);" in \
        format_table(report)
    for record in records:
        record["versions"] = {"pyscf": "2.14.0"}
    assert "several PySCF versions" not in format_table(build_report(records))


def test_report_warns_when_a_run_shared_its_cores_while_timed():
    """core_share = CPU seconds / (wall seconds x threads): a one-thread run that got less than 90 % of its core is
    named in a warning (its wall time overstates its cost); records without cpu_seconds are not judged."""
    records = [_record("a", "minao", 10), _record("a", "g", 5), _record("b", "minao", 10), _record("b", "g", 7)]
    for record, cpu in zip(records, (4.9, 9.8, 2.5, None)):
        record.update(total_seconds=10.0, cpu_seconds=cpu, versions={"pyscf": "2.14.0", "threads": 1})
    report = build_report(records)
    shares = {(r["molecule"], r["guess"]): r["core_share"] for r in report["runs"]}
    assert shares == {("a", "minao"): pytest.approx(0.49), ("a", "g"): pytest.approx(0.98),
                      ("b", "minao"): pytest.approx(0.25), ("b", "g"): None}
    text = format_table(report)
    assert "warning: 2 one-thread runs got less than 90% of their core's time while timed" in text
    assert "a / minao (49%), b / minao (25%)." in text
    for record in records:  # two threads: serial parts idle one, so the share is not judged
        record.update(cpu_seconds=9.0, versions={"pyscf": "2.14.0", "threads": 2})
    assert "core's time" not in format_table(build_report(records))


def test_resuming_a_store_of_another_pyscf_version_warns(tmp_path, capsys):
    import pyscf

    store, tiny_xyz = tmp_path / "runs.sqlite", tmp_path / "h2.xyz"
    tiny_xyz.write_text("2\nname=h2\nH 0 0 0\nH 0 0 0.74\n")
    argv = ["run", "--molecules", str(tiny_xyz), *FAST, "--out", str(store)]
    assert main([*argv, "--guess", "minao"]) == 0
    assert main([*argv, "--guess", "minao,sap"]) == 0
    assert "PySCF" not in capsys.readouterr().err  # one version: nothing to say
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE runs SET record = json_set(record, '$.versions.pyscf', '0.0.1')")
    assert main([*argv, "--guess", "minao,sap,huckel"]) == 0
    err = capsys.readouterr().err
    assert (f"warning: the store holds records of PySCF 0.0.1 (2 records) and this run uses {pyscf.__version__}; "
            "a molecule's energy can differ") in err


def test_one_label_with_two_models_is_reported_per_model():
    old, new = _record("a", "ml", 8), _record("a", "ml", 6)
    old["model_sha256"], new["model_sha256"] = "1" * 64, "2" * 64
    summary, _ = summarize(annotate([_record("a", "minao", 10), old, new]))
    assert {s["guess"]: s["ric"] for s in summary} == {"minao": 1.0, "ml@11111111": 0.8, "ml@22222222": 0.6}


def test_report_selects_guesses_and_one_models_records():
    old, new, oracle = _record("a", "ml", 8), _record("a", "ml", 6), _record("a", "oracle", 5)
    old["model_sha256"], new["model_sha256"] = "1" * 64, "2" * 64
    records = [_record("a", "minao", 10), old, new, oracle]
    assert [r["guess"] for r in select_guesses(records, ["ml"])] == ["minao", "ml", "ml"]
    picked = select_guesses(records, ["ml@22222222", "oracle"])
    summary, _ = summarize(annotate(picked))
    assert {s["guess"]: s["ric"] for s in summary} == {"minao": 1.0, "ml": 0.6, "oracle": 0.5}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", [
    "unknown-set", "unknown-guess", "unknown-model", "empty-file", "unknown-basis", "element-not-in-basis",
    "bad-spin", "unknown-xc", "argparse", "workers-zero", "missing-out", "gpu", "absurd-charge", "ecp-spin",
])
def test_bad_input_exits_2_with_one_message_and_writes_nothing(tmp_path, small_xyz, capsys, case):
    out = str(tmp_path / "never.sqlite")
    base = {"molecules": small_xyz, "guess": "minao", "basis": "sto-3g", "xc": "pbe"}
    extra = []
    if case == "unknown-set":
        base["molecules"] = "nci-1-2"
    elif case == "unknown-guess":
        base["guess"] = "minao,superguess"
    elif case == "unknown-model":
        base["guess"] = "minao,ml:no-such-model-here"
    elif case == "empty-file":
        base["molecules"] = write(tmp_path, "empty.xyz", "")
    elif case == "unknown-basis":
        base["basis"] = "sto-3g,not-a-basis"
    elif case == "element-not-in-basis":
        base["molecules"] = write(tmp_path, "hi.xyz", "2\n\nI 0 0 0\nH 0 0 1.6\n")
        base["basis"] = "6-31g"
    elif case == "bad-spin":
        base["molecules"] = write(tmp_path, "oh.xyz", "2\ncharge=0 spin=0\nO 0 0 0\nH 0 0 0.97\n")
    elif case == "absurd-charge":
        base["molecules"] = write(tmp_path, "w.xyz", "3\ncharge=-30\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    elif case == "ecp-spin":  # 54 electrons, 26 under the def2 ECP of iodine
        base["molecules"] = write(tmp_path, "hi.xyz", "2\nspin=28\nH 0 0 0\nI 0 0 1.61\n")
        base["basis"] = "def2-svp"
    elif case == "unknown-xc":
        base["xc"] = "pbe,not-a-functional"
    elif case == "argparse":
        extra = ["--workers", "two"]
    elif case == "workers-zero":
        extra = ["--workers", "0"]
    elif case == "gpu":
        try:
            import gpu4pyscf  # noqa: F401
            pytest.skip("gpu4pyscf is installed")
        except ImportError:
            extra = ["--gpu"]
    argv = ["run"] + [f"--{k}={v}" for k, v in base.items()] + extra
    if case != "missing-out":
        argv += ["--out", out]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    if case in ("argparse", "missing-out"):  # argparse refused the command line: the usage line(s) first
        assert err.startswith("usage: scfbench run ")
        err = err[err.index("scfbench: error:"):]
    assert err.startswith("scfbench: error:") and "\n" not in err and "Traceback" not in err
    assert not os.path.exists(out)


def test_store_from_another_schema_or_not_a_store_is_refused(tmp_path, small_xyz, capsys):
    store = str(tmp_path / "old.sqlite")
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "scfbench-results"), ("schema_version", "0")])
    before = open(store, "rb").read()
    assert main(["run", "--molecules", small_xyz, *FAST, "--out", store]) == 2
    assert "schema version 0" in capsys.readouterr().err
    assert main(["report", store]) == 2
    assert open(store, "rb").read() == before
    junk = write(tmp_path, "junk.sqlite", "not a database at all, just text")
    assert main(["run", "--molecules", small_xyz, *FAST, "--out", junk]) == 2
    assert "not an scfbench results store" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.sqlite")]) == 2
    assert not (tmp_path / "missing.sqlite").exists()


def test_sets_command_lists_all_sets(capsys):
    assert main(["sets"]) == 0
    out = capsys.readouterr().out
    for name in ("nci-le20", "nci-21-25", "nci-gt100", "g2", "s22", "peptides", "polymers"):
        assert name in out


class MinaoDensityModel:
    """Stand-in for a density model: predicts the fitted minao density (atoms in Å, PySCF aux order)."""

    name, sha256, auxbasis = "minao-fit", "0" * 64, "def2-universal-jfit"

    def predict(self, numbers, positions_angstrom):
        from scfguess import fit_density
        from scfguess.structures import to_mole

        mol = to_mole(Structure("m", numbers, positions_angstrom), "sto-3g")
        from pyscf.scf import hf

        return fit_density(mol, hf.init_guess_by_minao(mol), self.auxbasis)


def test_ml_guess_records_inference_conversion_and_model_sha(tmp_path, small_xyz, monkeypatch, capsys):
    import scfguess.model.registry

    monkeypatch.setattr(scfguess.model.registry, "load_model", lambda name=None: MinaoDensityModel())
    store = str(tmp_path / "ml.sqlite")
    assert main(["run", "--molecules", small_xyz, "--limit", "1", "--guess", "minao,ml:fake", *FAST,
                 "--out", store]) == 0
    assert main(["report", store, "--json"]) == 0
    runs = {r["guess"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    ml = runs["ml:fake"]
    assert ml["status"] == "ok" and ml["converged"] and ml["model_sha256"] == "0" * 64
    assert ml["inference_seconds"] > 0 and ml["conversion_seconds"] > 0
    assert ml["guess_seconds"] == pytest.approx(ml["inference_seconds"] + ml["conversion_seconds"], rel=1e-3)
    assert ml["fock_builds"] == ml["cycles"] + ml["guess_fock_builds"] and ml["guess_fock_builds"] >= 1
    assert abs(ml["delta_e"]) < 1e-4


@pytest.mark.slow
def test_ml_guess_with_a_saved_model(tmp_path, small_xyz, monkeypatch):
    """A real (untrained, tiny) model folder found through $SCFGUESS_MODEL_DIR, default and by name."""
    from scfguess.model.network import DensityModel, ModelConfig
    from scfguess.model.registry import save_model

    module = DensityModel(ModelConfig(elements=("H", "N", "O"), hidden_muls=(4, 2, 2, 2, 2), num_layers=1,
                                      radial_hidden=8, num_basis=4))
    save_model(module, tmp_path / "models" / "tiny", {"description": "test"}, "# tiny\n")
    (tmp_path / "models" / "DEFAULT").write_text("tiny\n")
    monkeypatch.setenv("SCFGUESS_MODEL_DIR", str(tmp_path / "models"))
    store = str(tmp_path / "ml.sqlite")
    assert main(["run", "--molecules", small_xyz, "--guess", "minao,ml,ml:tiny", *FAST, "--out", store]) == 0
    with sqlite3.connect(store) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT record FROM runs")]
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert len({r["model_sha256"] for r in rows if r["guess"] != "minao"}) == 1
    assert main(["run", "--molecules", small_xyz, "--guess", "ml:missing", *FAST, "--out", store]) == 2


def test_oracle_starts_from_the_cached_minao_run(tmp_path):
    """A minao job caches its converged density; the oracle job then skips its own reference SCF, same result."""
    settings = ScfSettings(grids_level=0)
    refs = str(tmp_path / "refs")
    uncached = run_job(Job(HF, "sto-3g", "pbe", parse_guess("oracle"), settings))
    minao = run_job(Job(HF, "sto-3g", "pbe", parse_guess("minao"), settings, reference_dir=refs))
    assert len(list((tmp_path / "refs").glob("*.npz"))) == 1
    cached = run_job(Job(HF, "sto-3g", "pbe", parse_guess("oracle"), settings, reference_dir=refs))
    assert uncached["reference_cached"] is False and cached["reference_cached"] is True
    assert cached["reference_cycles"] == uncached["reference_cycles"] == minao["cycles"]
    assert cached["cycles"] == uncached["cycles"]
    assert abs(cached["guess_energy"] - uncached["guess_energy"]) < 1e-8
    assert abs(cached["energy"] - minao["energy"]) < 1e-6
    # Another functional has its own reference.
    other = run_job(Job(HF, "sto-3g", "lda", parse_guess("oracle"), settings, reference_dir=refs))
    assert other["reference_cached"] is False and other["status"] == "ok"


def test_closed_store_file_holds_every_record(tmp_path):
    """Records of a run killed before closing (here: a connection never closed) reach the file at the next close."""
    from scfbench.store import ResultStore

    path = tmp_path / "runs.sqlite"
    killed = ResultStore(path, create=True)
    killed.add(_record("a", "minao", 10))  # committed to the write-ahead log only
    resumed = ResultStore(path, create=True)
    resumed.add(_record("b", "minao", 12))
    resumed.close()
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(path.read_bytes())  # the file alone, as git would commit it
    assert sorted(r["molecule"] for r in ResultStore(copy, readonly=True).records()) == ["a", "b"]
    killed.close()


class CoveringModel(MinaoDensityModel):
    """The stand-in density model, covering H, N and O only."""

    elements = ["H", "N", "O"]


WATER_HBR_XYZ = SMALL_XYZ.split("4\nname=ammonia")[0] + "2\nname=hbr\nH 0 0 0\nBr 0 0 1.41\n"


def test_element_the_model_does_not_cover_stops_the_run_or_is_left_out(tmp_path, monkeypatch, capsys):
    import scfguess.model.registry

    monkeypatch.setattr(scfguess.model.registry, "load_model", lambda name=None: CoveringModel())
    molecules = write(tmp_path, "mixed.xyz", WATER_HBR_XYZ)
    store = str(tmp_path / "mixed.sqlite")
    argv = ["run", "--molecules", molecules, "--guess", "minao,ml", *FAST, "--out", store]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "molecule 'hbr' has element(s) Br" in err and "--skip-unsupported" in err
    assert not os.path.exists(store)
    # A store that already holds hbr (a minao-only run, no model involved) ...
    assert main(["run", "--molecules", molecules, "--guess", "minao", *FAST, "--out", store]) == 0
    assert count(store)[0] == 2
    capsys.readouterr()
    # ... then the ML run leaves it out, and the report drops it from every row and lists it.
    assert main(argv + ["--skip-unsupported"]) == 0
    assert "left out hbr (HBr): element(s) Br" in capsys.readouterr().err
    assert count(store)[0] == 3
    assert main(["report", store, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {s["guess"]: s["n"] for s in report["summary"]} == {"minao": 1, "ml": 1}
    assert [(e["molecule"], e["elements"]) for e in report["skipped"]] == [("hbr", ["Br"])]
    assert all(r["molecule"] == "water" for r in report["runs"])
    assert main(["report", store]) == 0
    table = capsys.readouterr().out
    assert "left out (1 molecules, in no ratio)" in table and "hbr (HBr): Br not covered" in table
    assert main(argv + ["--skip-unsupported"]) == 0  # a rerun records the molecule once
    from scfbench.store import ResultStore

    with ResultStore(store, readonly=True) as s:
        assert len(s.skipped()) == 1


def test_plots_name_method_use_integer_ticks_and_draw_bin_means(tmp_path, monkeypatch):
    from matplotlib.ticker import MaxNLocator

    from scfbench import report as report_module

    figures, lines = {}, {}

    def keep(plt, fig, path):
        ax = fig.axes[0]
        figures[path.name] = (ax.get_title(), ax.xaxis.get_major_locator(), ax.yaxis.get_major_locator())
        lines[path.name] = {line.get_label(): line.get_xydata().ravel().tolist() for line in ax.get_lines()}
        plt.close(fig)
        return path

    monkeypatch.setattr(report_module, "_save", keep)
    records = [_record("a", "minao", 10), _record("a", "g", 7), _record("b", "minao", 12, natoms=30),
               _record("b", "g", 9, natoms=30)]
    report_module.write_plots(build_report(records), tmp_path, records)
    assert set(figures) == {"ric_vs_atoms.png", "wall_ratio_vs_atoms.png", "cycles_distribution.png",
                            "wall_ratio_by_size.png"}
    for title, _, _ in figures.values():
        assert title.endswith(", X/b")  # functional / basis of the records
    _, x_ticks, _ = figures["ric_vs_atoms.png"]
    _, _, y_ticks = figures["cycles_distribution.png"]
    assert isinstance(x_ticks, MaxNLocator) and x_ticks._integer
    assert isinstance(y_ticks, MaxNLocator) and y_ticks._integer
    # one mean per size bin, at its molecules' atom count: a (3 atoms) 7/10, b (30 atoms) 9/12
    assert lines["ric_vs_atoms.png"]["g, mean per size bin"] == pytest.approx([3, 0.7, 30, 0.75])
    assert lines["wall_ratio_vs_atoms.png"]["g, mean per size bin"] == pytest.approx([3, 1.0, 30, 1.0])


def test_version_and_usage_line(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("scfbench ")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: scfbench ") and err.splitlines()[-1].startswith("scfbench: error: ")
    assert "(see scfbench --help)" in err


def test_guess_labels_carry_the_converters_exchange_treatment():
    spec = parse_guess("ml:nequip-l-v8-ens+diag:2")
    assert (spec.kind, spec.model, spec.exchange) == ("ml", "nequip-l-v8-ens", "diag:2")
    assert spec.convert_options == {"exchange": "diag:2"}
    assert parse_guess("oracle+sad").exchange == "sad" and parse_guess("ml").convert_options == {}
    for bad, message in (("ml+exact", "unknown exchange treatment"), ("minao+sad", "only ml and oracle")):
        with pytest.raises(ValueError, match=message):
            parse_guess(bad)


def test_exchange_treatment_reaches_the_converter():
    """B3LYP water from the oracle: 'sad' exchange costs one K build, 'none' none, the default ('diag:2') two."""
    settings = ScfSettings(grids_level=0)
    builds = {label: run_job(Job(WATER, "sto-3g", "b3lyp", parse_guess(label), settings))["guess_k_builds"]
              for label in ("oracle", "oracle+sad", "oracle+none")}
    assert builds == {"oracle": 2, "oracle+sad": 1, "oracle+none": 0}
