"""Installed density models: find, verify and load them.

A model is a folder ``<name>/`` holding

- ``weights.pt``: the ``state_dict`` of a :class:`scfguess.model.DensityModel` (or of a
  :class:`~scfguess.model.DensityEnsemble`), read with ``torch.load(weights_only=True)`` (no code is unpickled);
- ``metadata.json``: integer ``format_version``, ``sha256`` of ``weights.pt``, ``elements``, ``auxbasis``,
  ``config`` (the :class:`~scfguess.model.ModelConfig`; an ensemble has ``members``, one config per member
  instead), the target definition, training data and command;
- ``model_card.md``: what the model saw and how well it does.

Model folders are searched in the directories listed in ``$SCFGUESS_MODEL_DIR`` (``os.pathsep``-separated), then
in the models shipped with the package (the repository's ``models/`` folder, installed as
``scfguess.bundled_models``). The file ``DEFAULT`` in the
first directory that has one names the default model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import threading
from pathlib import Path

import numpy as np

from scfguess.errors import ModelNotInstalledError

#: Newest metadata layout this version reads. 1: first layout (weights.pt + metadata.json + model_card.md);
#: 2: ensembles (``members`` instead of ``config``). Single models are still written as 1.
FORMAT_VERSION = 2
WEIGHTS_FILE = "weights.pt"
METADATA_FILE = "metadata.json"
CARD_FILE = "model_card.md"
DEFAULT_FILE = "DEFAULT"
ENV_VAR = "SCFGUESS_MODEL_DIR"

#: Loaded models by (folder, (mtime_ns, size) of weights.pt, (mtime_ns, size) of metadata.json): a cache hit costs
#: two ``stat`` calls, no hashing. Replacing either file changes its mtime or size, so the model is verified again.
_CACHE: dict[tuple, "LoadedModel"] = {}
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def shipped_models_dir() -> Path:
    """Folder of the models shipped with the package.

    In an installed package that is ``scfguess/bundled_models`` (the repository's ``models/``, mapped there at
    build time); in a source tree used without installing, the ``models/`` folder beside ``scfguess/``. Looked up
    once per process (the import system's search is most of the cost of a cached :func:`load_model`).
    """
    spec = importlib.util.find_spec("scfguess.bundled_models")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "models"


def model_dirs() -> list[Path]:
    """Directories searched for models, in order: ``$SCFGUESS_MODEL_DIR`` entries, then :func:`shipped_models_dir`."""
    dirs = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    dirs.append(shipped_models_dir())
    return [d for d in dirs if d.is_dir()]


def sha256_file(path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_model_name() -> str:
    """Name in the first ``DEFAULT`` file found; raises ModelNotInstalledError when there is none."""
    for d in model_dirs():
        f = d / DEFAULT_FILE
        if f.is_file():
            name = f.read_text().strip()
            if name:
                return name
    raise ModelNotInstalledError(
        f"no density model is installed: no {DEFAULT_FILE} file in {_searched()}; set {ENV_VAR} to a folder of models."
    )


def _searched() -> str:
    return ", ".join(str(d) for d in model_dirs()) or f"${ENV_VAR} or <checkout>/models (neither exists)"


def find_model(name: str) -> Path:
    """Folder of a model given by name (searched in :func:`model_dirs`) or by path."""
    path = Path(name).expanduser()
    if (path / METADATA_FILE).is_file():
        return path.resolve()
    for d in model_dirs():
        if (d / name / METADATA_FILE).is_file():
            return (d / name).resolve()
    raise ModelNotInstalledError(f"density model {name!r} not found in {_searched()}.")


def read_metadata(folder) -> dict:
    """metadata.json of a model folder, checked for a readable ``format_version``."""
    folder = Path(folder)
    with open(folder / METADATA_FILE) as fh:
        meta = json.load(fh)
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ValueError(f"model {folder.name}: metadata.json lacks an integer format_version.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"model {folder.name} has format_version {version}, newer than the {FORMAT_VERSION} this scfguess reads; "
            "upgrade scfguess."
        )
    return meta


class LoadedModel:
    """A verified, loaded density model (float32, inference only).

    Attributes
    ----------
    name : str
    path : pathlib.Path
    sha256 : str
        sha256 of ``weights.pt``.
    elements : list of str
    auxbasis : str
    takes_charge_and_spin : bool
        Whether the prediction depends on the total charge or 2S (otherwise only the converter's electron-count
        projection sees the charge).
    predicts_spin : bool
        Whether the model also predicts the spin density (:meth:`predict_spin`).
    metadata : dict
    module : scfguess.model.DensityModel or scfguess.model.DensityEnsemble
    threads : int
        torch threads used by :meth:`predict` (1 by default: a molecule's graph is too small to gain from more,
        and extra threads only contend with the SCF on a busy machine).
    """

    threads = 1

    def __init__(self, folder):
        import torch

        from scfguess.model.network import DensityEnsemble, DensityModel, ModelConfig

        folder = Path(folder)
        meta = read_metadata(folder)
        weights = folder / WEIGHTS_FILE
        sha = sha256_file(weights)
        if sha != meta.get("sha256"):
            raise ValueError(
                f"model {folder.name}: sha256 of {WEIGHTS_FILE} is {sha[:12]}…, metadata says "
                f"{str(meta.get('sha256'))[:12]}…; the weights are corrupt or were replaced."
            )
        try:
            if "members" in meta:
                module = DensityEnsemble([ModelConfig.from_dict(c) for c in meta["members"]])
            elif "config" in meta:
                module = DensityModel(ModelConfig.from_dict(meta["config"]))
            else:
                raise ValueError(f"{METADATA_FILE} has neither 'config' nor 'members'.")
        except ValueError as exc:
            raise ValueError(f"model {folder.name}: {exc}") from None
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.name = meta.get("name", folder.name)
        self.path = folder
        self.sha256 = sha
        self.elements = list(module.elements)
        self.auxbasis = module.auxbasis
        self.takes_charge_and_spin = module.takes_charge_and_spin
        self.predicts_spin = module.predicts_spin
        self.metadata = meta
        self.module = module

    def predict(self, numbers, positions_angstrom, charge: float = 0, spin: int = 0) -> np.ndarray:
        """Density coefficients of one structure.

        Parameters
        ----------
        numbers : array_like (n,) int
            Atomic numbers.
        positions_angstrom : array_like (n, 3)
            Positions in Å.
        charge, spin : float, int
            Total charge (e) and 2S; models that do not take them (``takes_charge_and_spin`` False) ignore them.

        Returns
        -------
        ndarray (naux,) float64
            Coefficients in PySCF's spherical aux AO order for ``self.auxbasis``.

        Raises
        ------
        UnsupportedElementError
            If an element is not one of ``self.elements``.
        """
        return self._with_threads(self.module.predict, numbers, positions_angstrom, charge, spin)

    def predict_spin(self, numbers, positions_angstrom, charge: float = 0, spin: int = 0):
        """Total and spin-density coefficients (two arrays (naux,)) of a model with ``predicts_spin``; as
        :meth:`predict` otherwise."""
        return self._with_threads(self.module.predict_spin, numbers, positions_angstrom, charge, spin)

    def _with_threads(self, function, *args):
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return function(*args)
        finally:
            torch.set_num_threads(previous)

    def __repr__(self):
        return f"LoadedModel(name={self.name!r}, sha256={self.sha256[:12]!r}, elements={self.elements})"


def load_model(model=None):
    """Load (once, then from a cache) a density model.

    Parameters
    ----------
    model : None, str, os.PathLike or object with ``predict``
        None: the default model named in ``DEFAULT``; a model name under a model directory; a path to a model
        folder; or an already-loaded model, returned unchanged.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelNotInstalledError (a RuntimeError)
        No model is installed or the named one is absent.
    ValueError
        The weights do not match the recorded sha256, or the model's format_version is newer than this code reads.

    Notes
    -----
    The weights are hashed and checked against ``metadata.json`` once per process: the cache key is the folder and
    the modification time and size of ``weights.pt`` and ``metadata.json``, so a second call for the same model
    returns the same object after two ``stat`` calls (microseconds), and a replaced file is loaded and verified
    again.
    """
    if model is not None and hasattr(model, "predict"):
        return model
    name = default_model_name() if model is None else os.fspath(model)
    folder = find_model(name)
    key = (str(folder), _file_stamp(folder / WEIGHTS_FILE), _file_stamp(folder / METADATA_FILE))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = LoadedModel(folder)
        return _CACHE[key]


def _file_stamp(path) -> tuple[int, int]:
    """(mtime in ns, size) of a file; (-1, -1) when it is missing (loading it then reports the problem)."""
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def _model_problem(folder: Path, meta: dict) -> str | None:
    """Why a model folder cannot be loaded (metadata layout, weights file, sha256), or None; the weights are hashed."""
    version = meta.get("format_version")
    if not isinstance(version, int):
        return f"{METADATA_FILE} lacks an integer format_version."
    if version > FORMAT_VERSION:
        return f"format_version {version} is newer than the {FORMAT_VERSION} this scfguess reads; upgrade scfguess."
    if "config" not in meta and "members" not in meta:
        return f"{METADATA_FILE} has neither 'config' nor 'members'."
    try:
        sha = sha256_file(folder / WEIGHTS_FILE)
    except OSError as exc:
        return f"cannot read {folder / WEIGHTS_FILE}: {exc.strerror or exc}."
    if sha != meta.get("sha256"):
        return (f"sha256 of {WEIGHTS_FILE} is {sha[:12]}…, {METADATA_FILE} says {str(meta.get('sha256'))[:12]}…; "
                "the weights are corrupt or were replaced.")
    return None


def list_models() -> list[dict]:
    """Installed models, each checked without loading it into torch.

    Returns
    -------
    list of dict
        One per model folder (the first of each name in :func:`model_dirs` order): ``name``, ``path``, ``default``,
        ``format_version``, ``sha256``, ``elements``, ``auxbasis``, ``domain`` (the charges and spins it was trained
        on, one line), ``description`` (None where ``metadata.json`` cannot be read) and ``error``: None for a model
        that can be loaded, else one sentence on why not (a ``metadata.json`` that is not JSON, with the file and position; a missing or corrupt ``weights.pt``; a newer
        ``format_version``). One broken folder never hides the others.
    """
    try:
        default = default_model_name()
    except ModelNotInstalledError:
        default = None
    out, seen = [], set()
    for d in model_dirs():
        for folder in sorted(p for p in d.iterdir() if (p / METADATA_FILE).is_file()):
            if folder.name in seen:
                continue
            seen.add(folder.name)
            entry = {"name": folder.name, "path": str(folder), "default": folder.name == default,
                     "format_version": None, "sha256": None, "elements": None, "auxbasis": None,
                     "domain": None, "description": "", "error": None}
            try:
                with open(folder / METADATA_FILE, encoding="utf-8") as fh:
                    meta = json.load(fh)
                if not isinstance(meta, dict):
                    raise ValueError("the top level is not a JSON object")
            except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                entry["error"] = f"cannot read {folder / METADATA_FILE}: {getattr(exc, 'strerror', None) or exc}."
                out.append(entry)
                continue
            entry.update({
                "format_version": meta.get("format_version"), "sha256": meta.get("sha256"),
                "elements": meta.get("elements"), "auxbasis": meta.get("auxbasis"), "domain": meta.get("domain"),
                "description": meta.get("description", ""), "error": _model_problem(folder, meta),
            })
            out.append(entry)
    return out


def save_model(module, folder, metadata: dict, card: str) -> Path:
    """Write a model folder: weights.pt (state_dict), metadata.json (with sha256 and config) and model_card.md.

    Parameters
    ----------
    module : scfguess.model.DensityModel or scfguess.model.DensityEnsemble
        Saved in float32.
    folder : path
        Created if needed; its files are replaced.
    metadata : dict
        Extra metadata (target, training data, command, metrics); ``format_version``, ``sha256``, ``elements``,
        ``auxbasis`` and ``config`` are filled in here.
    card : str
        Markdown text of the model card.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in module.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    meta = dict(metadata)
    members = getattr(module, "members", None)
    configs = [m.config for m in members] if members is not None else [module.config]
    meta.update({
        "format_version": 2 if members is not None else 1, "name": folder.name,
        "sha256": sha256_file(folder / WEIGHTS_FILE),
        "elements": list(configs[0].elements), "auxbasis": configs[0].auxbasis,
    })
    if members is not None:
        meta["members"] = [c.to_dict() for c in configs]
    else:
        meta["config"] = configs[0].to_dict()
    with open(folder / METADATA_FILE, "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")
    (folder / CARD_FILE).write_text(card)
    return folder
