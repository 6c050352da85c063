"""Field registry: the name, shape, dtype and unit of every stored and model-facing quantity.

One line per field, in the style of NequIP's ``_keys.py``. ``n`` is the number of atoms of one
structure and ``naux`` its number of auxiliary functions (def2-universal-jfit, spherical, PySCF order).
The HDF5 shards written by :mod:`workflows.data.label` use these names for their datasets, and
:class:`scfguess.data.DensityDataset` yields dicts keyed by them.
"""

from typing import Final

#: Version of the shard layout the writer produces.
SCHEMA_VERSION: Final[int] = 2
#: Versions the reader accepts.
READABLE_SCHEMA_VERSIONS: Final[tuple[int, ...]] = (1, 2)

# --- per structure, arrays -------------------------------------------------------------
NUMBERS_KEY: Final[str] = "numbers"  # (n,) int | atomic numbers
POSITIONS_KEY: Final[str] = "positions"  # (n, 3) float64 | Å
COEFFS_KEY: Final[str] = "coeffs"  # (naux,) float32 | e (Coulomb-metric fit, PySCF aux AO order)
SPIN_COEFFS_KEY: Final[str] = "spin_coeffs"  # (naux,) float32 | e (fit of ρα − ρβ; zeros for closed shells) | v2

# --- per structure, scalars ------------------------------------------------------------
ENERGY_KEY: Final[str] = "energy"  # () float64 | Hartree (total SCF energy)
CHARGE_KEY: Final[str] = "charge"  # () int | e (net charge)
SPIN_KEY: Final[str] = "spin"  # () int | 2S = N_alpha - N_beta
NELECTRON_KEY: Final[str] = "nelectron"  # () int | electrons
FIT_ELECTRONS_KEY: Final[str] = "fit_electrons"  # () float64 | e (Σ_P c_P ∫χ_P of the fitted density)
MINAO_CYCLES_KEY: Final[str] = "minao_cycles"  # () int | SCF cycles from the minao guess at the label settings
CONVERGED_KEY: Final[str] = "converged"  # () bool | SCF converged
SCF_SECONDS_KEY: Final[str] = "scf_seconds"  # () float64 | s (wall time of SCF + fit, informative only)
NAO_KEY: Final[str] = "nao"  # () int | orbital basis functions
NAUX_KEY: Final[str] = "naux"  # () int | auxiliary functions

# --- per structure, strings ------------------------------------------------------------
STRUCTURE_ID_KEY: Final[str] = "structure_id"  # () str | unique id of the structure (work-list key)
MOLECULE_ID_KEY: Final[str] = "molecule_id"  # () str | parent molecule; one split per parent
SOURCE_KEY: Final[str] = "source"  # () str | "nci", "conformer", "fragment", "qm7", "whole", "charged", "radical" …
SMILES_KEY: Final[str] = "smiles"  # () str | canonical SMILES ("" when unknown)
SPLIT_KEY: Final[str] = "split"  # () str | "train" or "val"
ECP_KEY: Final[str] = "ecp"  # () str | JSON {element: ECP name} of the SCF ("{}" without ECP) | v2

# --- shard layout (concatenated arrays with offsets) -------------------------------------
ATOM_OFFSETS_KEY: Final[str] = "atom_offsets"  # (N+1,) int64 | index into numbers/positions
COEFF_OFFSETS_KEY: Final[str] = "coeff_offsets"  # (N+1,) int64 | index into coeffs

#: Numeric per-structure scalars, one entry per structure.
SCALAR_FIELDS: Final[tuple[str, ...]] = (
    ENERGY_KEY, CHARGE_KEY, SPIN_KEY, NELECTRON_KEY, FIT_ELECTRONS_KEY, MINAO_CYCLES_KEY,
    CONVERGED_KEY, SCF_SECONDS_KEY, NAO_KEY, NAUX_KEY,
)
#: String per-structure fields, one entry per structure.
STRING_FIELDS: Final[tuple[str, ...]] = (STRUCTURE_ID_KEY, MOLECULE_ID_KEY, SOURCE_KEY, SMILES_KEY, SPLIT_KEY,
                                         ECP_KEY)
#: Fields a version-1 shard lacks, with the value the reader gives them.
V1_DEFAULTS: Final[dict[str, str]] = {ECP_KEY: "{}"}

#: File attributes a reader requires (see :func:`scfguess.data.check_attributes`).
REQUIRED_ATTRIBUTES: Final[tuple[str, ...]] = (
    "schema_version", "units_length", "units_energy", "basis", "auxbasis", "xc", "fit_metric",
    "pyscf_version",
)
