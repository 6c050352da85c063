"""The converter's integration grid: PySCF's atomic grids with a Becke partition screened by distance.

PySCF's Becke partition (``libdft.VXCgen_grid``) multiplies cell functions over every pair of atoms at every
point, O(N_atoms²) per point. Far atoms change a point's weight by much less than the grid's own integration
error, so :class:`ScreenedBeckeGrids` runs the same C routine per spatial box of points with only the atoms within
``reach`` of the box. The weights still sum to one at every point (a partition of unity over the atoms kept), so
this is a valid quadrature; an atom that reaches every box keeps PySCF's weights to rounding (tested). Points of
negligible weight (deep inside another atom's cell) are then dropped.

On a 26-atom chain the screening moves V_xc of a minao density by less than a fifth of the step from level 1 to
level 3 (``tests/test_converter.py``); at 132 atoms by a tenth of it, and the guess's V_xc takes 13.7 s instead of
27.2 s (``benchmarks/converter-profile/``).
"""

from __future__ import annotations

import ctypes

import numpy as np
from pyscf import lib
from pyscf.dft import gen_grid

__all__ = ["ScreenedBeckeGrids"]

_libdft = lib.load_library("libdft")


class ScreenedBeckeGrids(gen_grid.Grids):
    """:class:`pyscf.dft.gen_grid.Grids` whose Becke partition keeps, per box of points, only the nearby atoms.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    reach : float
        Bohr. The atoms kept for a box are those within ``reach`` of some point of the box (bounded by the box's
        centre and radius).
    box : float
        Bohr, edge of the cubic boxes the points are grouped into.
    negligible : float
        Bohr³; points of smaller weight are dropped after the partition.

    Only Becke's original cell function is screened (``becke_scheme`` is ignored); the atomic radii adjustment
    (``radii_adjust``, Treutler's by default) is kept.
    """

    def __init__(self, mol, reach: float = 8.0, box: float = 4.0, negligible: float = 1e-12):
        super().__init__(mol)
        self.reach = float(reach)
        self.box = float(box)
        self.negligible = float(negligible)

    def build(self, mol=None, with_non0tab=False, sort_grids=True, **kwargs):
        """PySCF's build, then points of weight ≤ ``negligible`` (Bohr³) dropped (deep in another atom's cell)."""
        mol = self.mol if mol is None else mol
        super().build(mol, with_non0tab=False, sort_grids=sort_grids, **kwargs)
        self._select_grids(np.flatnonzero(np.abs(self.weights) > self.negligible))  # the padding goes too
        self._add_padding()
        self.non0tab = self.screen_index = self.make_mask(mol, self.coords) if with_non0tab else None
        return self

    def get_partition(self, mol, atom_grids_tab=None, radii_adjust=None, atomic_radii=gen_grid.radi.BRAGG_RADII,
                      becke_scheme=None, concat=True):
        """Coordinates (N, 3) in Bohr and weights (N,) of all atoms' grids, atom after atom (as PySCF's)."""
        if not concat:
            raise NotImplementedError("ScreenedBeckeGrids returns concatenated grids only")
        if atom_grids_tab is None:
            atom_grids_tab = self.gen_atomic_grids(mol)
        atoms = np.asarray(mol.atom_coords(), order="C")
        natm = mol.natm
        if callable(radii_adjust) and atomic_radii is not None:
            adjust = radii_adjust(mol, atomic_radii)
            table = np.asarray([[adjust(i, j, 0) for j in range(natm)] for i in range(natm)])
        else:
            table = None
        per_atom = [atom_grids_tab[mol.atom_symbol(a)] for a in range(natm)]
        coords = np.concatenate([c + atoms[a] for a, (c, _) in enumerate(per_atom)])
        volumes = np.concatenate([v for _, v in per_atom])
        owner = np.repeat(np.arange(natm), [len(v) for _, v in per_atom])

        cell = np.floor(coords / self.box).astype(np.int64)
        cell -= cell.min(axis=0)
        span = cell.max(axis=0) + 1
        box_of_point = (cell[:, 0] * span[1] + cell[:, 1]) * span[2] + cell[:, 2]
        order = np.argsort(box_of_point, kind="stable")
        starts = np.flatnonzero(np.diff(box_of_point[order])) + 1
        weights = np.zeros(len(coords))
        slot = np.full(natm, -1)
        for idx in np.split(order, starts):
            points = np.asarray(coords[idx], order="F")
            centre = points.mean(axis=0)
            radius = np.linalg.norm(points - centre, axis=1).max()
            kept = np.flatnonzero(np.linalg.norm(atoms - centre, axis=1) < radius + self.reach)
            slot[:] = -1
            slot[kept] = np.arange(len(kept))
            own = slot[owner[idx]]
            cols = np.flatnonzero(own >= 0)  # a point whose own atom is out of reach has weight ~0
            if len(cols) == 0:
                continue
            cells = _becke_cells(points, atoms[kept], None if table is None else table[np.ix_(kept, kept)])
            weights[idx[cols]] = volumes[idx[cols]] * cells[own[cols], cols] / cells[:, cols].sum(axis=0)
        return coords, weights


def _becke_cells(points, atoms, table):
    """Becke's unnormalised cell functions P_A(r), (n_atoms, n_points), from PySCF's C routine."""
    points = np.asarray(points, order="F")
    atoms = np.ascontiguousarray(atoms)
    cells = np.empty((len(atoms), len(points)))
    table = None if table is None else np.ascontiguousarray(table)
    p_table = lib.c_null_ptr() if table is None else table.ctypes.data_as(ctypes.c_void_p)
    _libdft.VXCgen_grid(cells.ctypes.data_as(ctypes.c_void_p), points.ctypes.data_as(ctypes.c_void_p),
                        atoms.ctypes.data_as(ctypes.c_void_p), p_table,
                        ctypes.c_int(len(atoms)), ctypes.c_int(len(points)))
    return cells
