"""Model folders: save, find through $SCFGUESS_MODEL_DIR, verify sha256 and format_version, cache."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scfguess.model import registry
from scfguess.model.network import DensityModel, ModelConfig

SMALL = ModelConfig(hidden_muls=(8, 4, 3, 2, 2), num_layers=1, radial_hidden=8)
WATER = ([8, 1, 1], [[0.0, 0.0, 0.0], [0.0, 0.76, 0.59], [0.0, -0.76, 0.59]])


@pytest.fixture()
def model_dir(tmp_path, monkeypatch):
    torch.manual_seed(1)
    module = DensityModel(SMALL)
    registry.save_model(module, tmp_path / "tiny", {"description": "test model"}, "# tiny\n")
    (tmp_path / "DEFAULT").write_text("tiny\n")
    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path))
    return tmp_path, module


def test_load_default_through_env_var(model_dir):
    folder, module = model_dir
    model = registry.load_model()
    assert model.name == "tiny" and model.elements == list(SMALL.elements)
    assert model.auxbasis == "def2-universal-jfit"
    np.testing.assert_allclose(model.predict(*WATER), module.predict(*WATER), rtol=1e-6, atol=1e-7)
    assert registry.load_model("tiny") is model  # cached
    assert registry.load_model(model) is model
    assert registry.load_model(folder / "tiny") is model
    listed = [m for m in registry.list_models() if m["name"] == "tiny"][0]
    assert listed["default"] and listed["sha256"] == model.sha256


def test_wrong_sha256_fails_clearly(model_dir):
    folder, _ = model_dir
    meta_path = folder / "tiny" / registry.METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="sha256"):
        registry.load_model("tiny")


def test_newer_format_version_fails_clearly(model_dir):
    folder, _ = model_dir
    meta_path = folder / "tiny" / registry.METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = registry.FORMAT_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format_version"):
        registry.load_model(folder / "tiny")


@pytest.mark.parametrize("edit, match", [
    (lambda meta: meta["config"].update(hidden_width=64), "model tiny: unknown model configuration keys hidden_width"),
    (lambda meta: meta.pop("config"), "model tiny: metadata.json has neither 'config' nor 'members'"),
])
def test_broken_metadata_fails_clearly(model_dir, edit, match):
    folder, _ = model_dir
    meta_path = folder / "tiny" / registry.METADATA_FILE
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=match):
        registry.load_model(folder / "tiny")


def test_no_model_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "model_dirs", lambda: [tmp_path])
    with pytest.raises(RuntimeError, match="no density model is installed"):
        registry.load_model()
    with pytest.raises(RuntimeError, match="not found"):
        registry.load_model("absent")


def test_weights_load_without_pickled_code(model_dir):
    folder, _ = model_dir
    state = torch.load(Path(folder) / "tiny" / registry.WEIGHTS_FILE, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_ensemble_predicts_the_mean_and_round_trips(tmp_path):
    from scfguess.model.network import DensityEnsemble

    torch.manual_seed(2)
    other = ModelConfig(hidden_muls=(6, 4, 3, 2, 2), num_layers=2, radial_hidden=8, cutoff=3.5)
    ensemble = DensityEnsemble([SMALL, other])
    a, b = ensemble.members
    for p in ensemble.parameters():  # heads start at zero; give the members distinct outputs
        torch.nn.init.normal_(p, std=0.1)
    mean = 0.5 * (a.predict(*WATER) + b.predict(*WATER))
    np.testing.assert_allclose(ensemble.predict(*WATER), mean, rtol=1e-6, atol=1e-7)
    assert np.abs(a.predict(*WATER) - b.predict(*WATER)).max() > 1e-4
    registry.save_model(ensemble, tmp_path / "ens", {"description": "two members"}, "# ens\n")
    meta = json.loads((tmp_path / "ens" / registry.METADATA_FILE).read_text())
    assert meta["format_version"] == 2 and len(meta["members"]) == 2 and "config" not in meta
    loaded = registry.load_model(tmp_path / "ens")
    assert loaded.elements == list(SMALL.elements) and loaded.auxbasis == SMALL.auxbasis
    np.testing.assert_allclose(loaded.predict(*WATER), mean, rtol=1e-5, atol=1e-6)


def test_ensemble_members_must_match():
    from scfguess.model.network import DensityEnsemble

    with pytest.raises(ValueError, match="elements and auxbasis"):
        DensityEnsemble([SMALL, ModelConfig(hidden_muls=(8, 4, 3, 2, 2), num_layers=1, elements=("H", "C", "O"))])
    with pytest.raises(ValueError, match="at least two"):
        DensityEnsemble([SMALL])


def test_cache_hit_does_not_hash_the_weights_and_a_replaced_file_is_verified_again(model_dir, monkeypatch):
    folder, _ = model_dir
    first = registry.load_model("tiny")
    hashed = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda path: hashed.append(path) or real(path))
    assert registry.load_model("tiny") is first and registry.load_model() is first
    assert hashed == []  # two stat calls, no hashing
    weights = folder / "tiny" / registry.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-40] ^= 0xFF
    weights.write_bytes(bytes(data[:-1]))  # another size: a changed file whatever the clock's resolution
    with pytest.raises(ValueError, match="weights are corrupt or were replaced"):
        registry.load_model("tiny")
    assert hashed


def test_list_models_reports_broken_folders_without_hiding_the_others(model_dir):
    folder, _ = model_dir
    import shutil

    shutil.copytree(folder / "tiny", folder / "a-badjson")
    (folder / "a-badjson" / registry.METADATA_FILE).write_text('{"format_version": 1, "sha')
    shutil.copytree(folder / "tiny", folder / "b-corrupt")
    weights = folder / "b-corrupt" / registry.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-10])
    shutil.copytree(folder / "tiny", folder / "c-noweights")
    (folder / "c-noweights" / registry.WEIGHTS_FILE).unlink()
    listed = {m["name"]: m for m in registry.list_models()}
    assert listed["tiny"]["error"] is None and listed["tiny"]["default"]
    bad = listed["a-badjson"]["error"]
    assert bad.startswith("cannot read ") and str(folder / "a-badjson" / registry.METADATA_FILE) in bad
    assert "line 1 column" in bad and listed["a-badjson"]["sha256"] is None
    assert "weights are corrupt or were replaced" in listed["b-corrupt"]["error"]
    assert listed["c-noweights"]["error"].startswith("cannot read ") and "No such file" in listed["c-noweights"]["error"]
