"""A tiny training run on a handful of stored structures: loss decreases, resume continues, export loads."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from pyscf import gto, scf

from scfguess.data import keys as K
from scfguess.density.auxbasis import make_auxmol
from scfguess.density.fitting import fit_density
from scfguess.data import write_shard
from workflows.data.label import LabelSettings, shard_attributes
from workflows.train.config import TrainConfig
from workflows.train.loop import train

NAMES = ["H2O", "NH3", "CH4", "CH3OH", "HCOOH", "CH3CHO", "C2H6", "H2CO"]
TINY_MODEL = {"hidden_muls": [8, 4, 2, 2, 2], "num_layers": 2, "radial_hidden": 16, "lmax_sh": 2}


def _record(i, name):
    """Minao density fitted in the aux basis, standing in for a converged one (no SCF in a unit test)."""
    atoms = molecule(name)
    mol = gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist())), basis="sto-3g", verbose=0)
    coeffs = fit_density(mol, scf.hf.init_guess_by_minao(mol))
    return {
        K.NUMBERS_KEY: atoms.numbers.astype(np.int64), K.POSITIONS_KEY: atoms.positions,
        K.COEFFS_KEY: coeffs, K.ENERGY_KEY: 0.0, K.CHARGE_KEY: 0, K.SPIN_KEY: 0,
        K.NELECTRON_KEY: mol.nelectron, K.FIT_ELECTRONS_KEY: float(mol.nelectron), K.MINAO_CYCLES_KEY: 0,
        K.CONVERGED_KEY: True, K.SCF_SECONDS_KEY: 0.0, K.NAO_KEY: mol.nao, K.NAUX_KEY: make_auxmol(mol).nao,
        K.STRUCTURE_ID_KEY: f"test-{i}", K.MOLECULE_ID_KEY: name, K.SOURCE_KEY: "test", K.SMILES_KEY: "",
        K.SPLIT_KEY: "val" if i % 4 == 3 else "train", K.SPIN_COEFFS_KEY: np.zeros_like(coeffs), K.ECP_KEY: "{}",
    }


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "shard-00000.h5"
    write_shard(path, [_record(i, n) for i, n in enumerate(NAMES)], shard_attributes(LabelSettings()))
    return path


def _config(shard, out, **kw):
    base = dict(shards=(str(shard),), out_dir=str(out), model=TINY_MODEL, batch_size=2, lr=1e-2,
                max_epochs=4, max_minutes=1.0, loss_weights={"coulomb": 1.0, "mae_rmse": 1.0}, seed=0,
                reference_basis="sto-3g")
    base.update(kw)
    return TrainConfig(**base)


def _log(out):
    with open(out / "log.csv") as fh:
        return list(csv.DictReader(fh))


def test_tiny_training_decreases_loss_and_resumes(shard, tmp_path):
    out = tmp_path / "run"
    first = train(_config(shard, out, max_epochs=3), progress=False)
    assert first["epochs"] == 3 and first["n_val"] == 2 and first["n_train"] == 6
    rows = _log(out)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert first["best_val"]["coulomb_per_atom"] < first["baseline_val"]["coulomb_per_atom"]
    export = tmp_path / "models" / "tiny"
    second = train(_config(shard, out, max_epochs=5, export_to=str(export)), progress=False, command="pytest")
    assert second["epochs"] == 5
    assert [int(r["epoch"]) for r in _log(out)] == [0, 1, 2, 3, 4]
    meta = json.loads((export / "metadata.json").read_text())
    assert meta["training"]["n_train"] == 6 and meta["training_command"] == "pytest"
    assert meta["domain"] == "molecules of the listed elements: neutral, closed-shell (as the training structures)"

    from scfguess.model.registry import load_model

    model = load_model(export)
    atoms = molecule("H2O")
    assert model.predict(atoms.numbers, atoms.positions).shape == (3 * 0 + 49 + 2 * 11,)


def test_a_spent_time_budget_is_kept_across_resumes(shard, tmp_path):
    out = tmp_path / "run"
    spent = _config(shard, out, max_epochs=50, max_minutes=1e-6)  # the first batch spends it
    first = train(spent, progress=False)
    assert first["stopped"] == "time budget" and first["epochs"] == 1
    again = train(spent, progress=False)
    assert again["stopped"] == "time budget" and again["epochs"] == 1 and len(_log(out)) == 1
    more = train(_config(shard, out, max_epochs=2, max_minutes=60.0), progress=False)
    assert more["stopped"] == "max_epochs" and more["epochs"] == 2 and more["minutes"] > first["minutes"]


def test_training_is_deterministic(shard, tmp_path):
    a = train(_config(shard, tmp_path / "a", max_epochs=1), progress=False)
    b = train(_config(shard, tmp_path / "b", max_epochs=1), progress=False)
    assert a["best_val"]["coulomb_per_atom"] == b["best_val"]["coulomb_per_atom"]


@pytest.mark.parametrize("name, folder", [("gradient", "gradient-metrics"), ("screened", "gradient-metrics/screened")])
def test_orbital_gradient_losses_are_trained_reported_and_select(shard, tmp_path, name, folder):
    out = tmp_path / name
    summary = train(_config(shard, out, max_epochs=3, loss_weights={name: 100.0, "coulomb": 1.0},
                            select_on=name), progress=False)
    rows = _log(out)
    assert {"val_coulomb_per_atom", f"val_{name}_per_atom"} <= set(rows[0])
    best = min(rows, key=lambda r: float(r[f"val_{name}_per_atom"]))
    assert summary["best_epoch"] == int(best["epoch"])
    assert summary["best_val"][f"{name}_per_atom"] < summary["baseline_val"][f"{name}_per_atom"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert len(list((out / folder).glob("*.npy"))) == len(NAMES)  # kept for a resumed run


def test_gradient_metrics_are_precomputed_once(shard, tmp_path):
    from workflows.train.metrics import precompute_gradient_metrics

    cfg = _config(shard, tmp_path / "pre", loss_weights={"gradient": 1.0})
    assert precompute_gradient_metrics(cfg, workers=2, progress=False) == len(NAMES)
    assert precompute_gradient_metrics(cfg, workers=1, progress=False) == 0


def test_keep_sources_are_used_whole_and_the_rest_sampled_alike():
    import random

    from workflows.train.dataset import split_structures

    pool = [{"structure_id": f"s{i}", "molecule_id": f"m{i}", "source": "fragment", "split": "train"}
            for i in range(16)] + [{"structure_id": f"w{i}", "molecule_id": f"p{i}", "source": "whole",
                                    "split": "val" if i == 0 else "train"} for i in range(4)]
    plain = split_structures(TrainConfig(max_structures=8, seed=1), pool)[0]
    assert plain == random.Random(1).sample([s for s in pool if s["split"] == "train"], 8)  # unchanged sampling
    train_set, val_set = split_structures(TrainConfig(max_structures=8, keep_sources=("whole",), seed=1), pool)
    ids = [s["structure_id"] for s in train_set]
    assert len(ids) == 11 == len(set(ids)) and {"w1", "w2", "w3"} <= set(ids)
    assert [s["structure_id"] for s in val_set] == ["w0"]
    fewer = split_structures(TrainConfig(max_structures=8, keep_sources=("whole",), seed=1), pool[:17])[0]
    assert [s for s in fewer if s["source"] == "fragment"] == [s for s in train_set if s["source"] == "fragment"]


def test_config_rejects_unknown_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("shards: x.h5\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_yaml(path)
    path.write_text("shards: x.h5\nselect_on: energy\n")
    with pytest.raises(ValueError, match="select_on"):
        TrainConfig.from_yaml(path)


def test_warm_start_begins_from_the_exported_model(shard, tmp_path):
    export = tmp_path / "models" / "tiny"
    train(_config(shard, tmp_path / "a", max_epochs=2, export_to=str(export)), progress=False)
    from scfguess.model.registry import load_model

    source = load_model(export)
    warm = train(_config(shard, tmp_path / "b", max_epochs=1, lr=1e-9, init_from=str(export)), progress=False)
    start = warm["warm_start_val"]["coulomb_per_atom"]
    assert start == pytest.approx(source.metadata["validation"]["coulomb_per_atom"], rel=1e-4)
    assert start < warm["baseline_val"]["coulomb_per_atom"]
    other = dict(TINY_MODEL, num_layers=1)
    with pytest.raises(ValueError, match="architecture"):
        train(_config(shard, tmp_path / "c", model=other, init_from=str(export)), progress=False)


def test_a_charge_aware_model_warm_started_from_a_local_one_predicts_the_same(shard, tmp_path):
    """The grown embedding and heads start where the source is (new inputs' weights zero, fan-in rescaled), for any
    charge; any other architecture change is refused."""
    import torch
    from ase.build import molecule

    from scfguess.model.network import DensityModel, ModelConfig
    from scfguess.model.registry import load_model
    from workflows.train.model import warm_start

    export = tmp_path / "models" / "tiny"
    train(_config(shard, tmp_path / "a", max_epochs=1, export_to=str(export)), progress=False)
    source = load_model(export)
    water = molecule("H2O")
    expected = source.predict(water.numbers, water.positions)
    charged = dict(TINY_MODEL, global_inputs=["charge", "eeq"], charge_equilibration=True)
    torch.manual_seed(0)
    model = DensityModel(ModelConfig.from_dict(charged))
    warm_start(model, str(export))
    for charge in (0, 1):
        np.testing.assert_allclose(model.predict(water.numbers, water.positions, charge=charge), expected,
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="only global_inputs, charge_equilibration, spin_density and elements"):
        warm_start(DensityModel(ModelConfig.from_dict(dict(charged, num_layers=1))), str(export))


def test_elements_appended_by_a_warm_start_leave_the_old_ones_unchanged(shard, tmp_path):
    """Br and I added after the source's elements (with the charge inputs): the source's molecules are predicted
    as before, a new element starts from its free-atom reference, and a reordered element list is refused."""
    import torch
    from ase.build import molecule

    from scfguess.model.network import DEFAULT_ELEMENTS, DensityModel, ModelConfig
    from scfguess.model.registry import load_model
    from workflows.train.model import warm_start

    export = tmp_path / "models" / "tiny"
    train(_config(shard, tmp_path / "a", max_epochs=1, export_to=str(export)), progress=False)
    source = load_model(export)
    water = molecule("H2O")
    wider = dict(TINY_MODEL, elements=[*DEFAULT_ELEMENTS, "Br", "I"], global_inputs=["charge"],
                 charge_equilibration=True)
    torch.manual_seed(0)
    model = DensityModel(ModelConfig.from_dict(wider))
    model.set_reference("Br", np.arange(len(model.reference("Br")), dtype=float))
    warm_start(model, str(export))
    np.testing.assert_allclose(model.predict(water.numbers, water.positions), source.predict(water.numbers,
                               water.positions), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        model.heads[model.elements.index("Br")].weight.zero_()
    hbr = model.predict([35, 1], [[0, 0, 0], [0, 0, 1.41]])
    nbr = len(model.reference("Br"))
    assert np.allclose(hbr[:nbr], model.reference("Br")) and np.abs(hbr[:nbr]).max() > 0
    shuffled = dict(wider, elements=["Br", *DEFAULT_ELEMENTS, "I"])
    with pytest.raises(ValueError, match="elements appended after the source's"):
        warm_start(DensityModel(ModelConfig.from_dict(shuffled)), str(export))


def test_spin_density_heads_train_on_the_spin_loss_from_a_local_model(shard, tmp_path):
    export = tmp_path / "models" / "tiny"
    train(_config(shard, tmp_path / "a", max_epochs=1, export_to=str(export)), progress=False)
    spin_model = dict(TINY_MODEL, global_inputs=["spin"], spin_density=True)
    result = train(_config(shard, tmp_path / "b", max_epochs=2, model=spin_model, init_from=str(export),
                           loss_weights={"coulomb": 1.0, "spin": 1.0}), progress=False)
    assert result["warm_start_val"]["spin_per_atom"] > 0
    assert result["best_val"]["spin_per_atom"] < result["warm_start_val"]["spin_per_atom"]
    path = tmp_path / "bad.yaml"
    path.write_text("shards: x.h5\nloss_weights: {spin: 1.0}\n")
    with pytest.raises(ValueError, match="spin loss needs a model with spin_density"):
        TrainConfig.from_yaml(path)


def test_the_domain_names_the_charges_and_spins_the_network_tells_apart():
    from scfguess.model.network import ModelConfig
    from workflows.train.export import training_domain

    ions_and_radicals = {"train_charges": [-1, 0, 1], "train_spins": [0, 1]}
    local = ModelConfig.from_dict(TINY_MODEL)
    aware = ModelConfig.from_dict(dict(TINY_MODEL, global_inputs=["charge", "spin"], spin_density=True))
    assert training_domain(local, ions_and_radicals).endswith(": neutral, closed-shell (as the training structures)")
    assert training_domain(aware, ions_and_radicals).endswith(
        ": total charge -1 to +1, 2S 0 to 1 with a predicted spin density (as the training structures)")
    assert training_domain(aware, {"train_charges": [0], "train_spins": [0]}).endswith(": neutral, closed-shell "
                                                                                        "(as the training structures)")
    spin_only = ModelConfig.from_dict(dict(TINY_MODEL, global_inputs=["spin"], spin_density=True))
    assert training_domain(spin_only, ions_and_radicals).endswith(
        ": neutral, 2S 0 to 1 with a predicted spin density (as the training structures)")


def test_ensemble_of_two_trained_models(shard, tmp_path):
    from scfguess.model.registry import load_model
    from workflows.train.ensemble import build_ensemble

    exports = []
    for seed in (0, 1):
        exports.append(tmp_path / "models" / f"tiny-{seed}")
        train(_config(shard, tmp_path / f"run-{seed}", max_epochs=2, seed=seed, export_to=str(exports[-1])),
              progress=False)
    metrics = build_ensemble(tmp_path / "models" / "tiny-ens", [str(e) for e in exports], "test ensemble", "pytest")
    members = [metrics[f"tiny-{seed}"]["coulomb_per_atom"] for seed in (0, 1)]
    assert metrics["ensemble"]["coulomb_per_atom"] <= max(members)  # the error is convex in the prediction
    ensemble = load_model(tmp_path / "models" / "tiny-ens")
    assert [m["name"] for m in ensemble.metadata["member_models"]] == ["tiny-0", "tiny-1"]
    atoms = molecule("CH3OH")
    mean = np.mean([load_model(e).predict(atoms.numbers, atoms.positions) for e in exports], axis=0)
    np.testing.assert_allclose(ensemble.predict(atoms.numbers, atoms.positions), mean, rtol=1e-5, atol=1e-6)
    # a member of the ensemble is a warm start
    from scfguess.model.network import DensityModel, ModelConfig
    from workflows.train.model import warm_start

    member = DensityModel(ModelConfig.from_dict(TINY_MODEL))
    warm_start(member, f"{ensemble.path}#1")
    np.testing.assert_allclose(member.predict(atoms.numbers, atoms.positions),
                               load_model(exports[1]).predict(atoms.numbers, atoms.positions), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="name one of its members"):
        warm_start(member, str(ensemble.path))
    with pytest.raises(ValueError, match="different models"):
        build_ensemble(tmp_path / "models" / "bad", [str(exports[0]), str(exports[0])])
    # an ensemble as a member brings its own members: the mean over all three networks, weighted 1/3 each
    build_ensemble(tmp_path / "models" / "tiny-ens3", [str(ensemble.path), str(exports[0])], "nested", "pytest")
    nested = load_model(tmp_path / "models" / "tiny-ens3")
    assert [m["name"] for m in nested.metadata["member_models"]] == ["tiny-0", "tiny-1", "tiny-0"]
    first, second = (load_model(e).predict(atoms.numbers, atoms.positions) for e in exports)
    np.testing.assert_allclose(nested.predict(atoms.numbers, atoms.positions), (2 * first + second) / 3,
                               rtol=1e-5, atol=1e-6)

    from workflows.checks.evaluate import guess_quality_of_models

    xyz = tmp_path / "water.xyz"
    xyz.write_text("3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    quality = guess_quality_of_models([str(exports[0]), str(tmp_path / "models" / "tiny-ens")], str(xyz), None)
    scores = [quality[name] for name in ("tiny-0", "tiny-ens")]
    assert all(0 < s["gradient_norm"] < 10 for s in scores)
    assert min(s["energy_per_atom_above_best"] for s in scores) == 0.0
    assert all(set(s["inference_seconds"]) == set(quality["molecules"]) for s in scores)
    assert all(t > 0 for s in scores for t in s["inference_seconds"].values())
    levels = guess_quality_of_models([str(exports[0])], str(xyz), None, grids_levels=(0, 2))
    coarse, fine = levels["tiny-0@grid0"], levels["tiny-0@grid2"]
    assert coarse["per_molecule"] != fine["per_molecule"] and coarse["conversion_seconds"] > 0


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "workflows" / "configs").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_committed_config_reads_and_finds_its_shards(path, monkeypatch):
    """The recipes the Makefile and the model cards name: valid fields, a buildable model, shards on disk, and a
    warm start from a model or from another recipe's export."""
    import glob

    from scfguess.model.network import ModelConfig

    monkeypatch.chdir(path.parents[2])
    cfg = TrainConfig.from_yaml(path)
    ModelConfig.from_dict(cfg.model)
    for pattern in cfg.shards:
        assert glob.glob(pattern), f"{path.name}: no shard matches {pattern}"
    if cfg.init_from and cfg.init_from.startswith("runs/models/"):
        source = Path(cfg.init_from).name
        assert any(TrainConfig.from_yaml(p).export_to == cfg.init_from for p in path.parent.glob("*.yaml")), source
