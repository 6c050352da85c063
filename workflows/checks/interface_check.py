"""One real run of the PySCF hook and the ASE calculator on ethanol (PBE/def2-SVP, default model) against minao.

    python -m workflows.checks.interface_check
"""

import warnings

from ase.build import molecule
from pyscf import dft, gto

import scfguess
from scfguess.ase import SCFGuessCalculator


def main():
    warnings.simplefilter("ignore")
    atoms = molecule("CH3CH2OH")
    mol = gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist())),
                basis="def2-svp", verbose=0)
    ref = dft.RKS(mol, xc="pbe").density_fit().run()
    mf = scfguess.apply(dft.RKS(mol, xc="pbe").density_fit()).run()
    print(f"hook: minao {ref.cycles} cycles, ml {mf.cycles} cycles, dE {mf.e_tot - ref.e_tot:.1e} Ha, "
          f"info {mf.scfguess_info}")
    atoms.calc = SCFGuessCalculator(basis="def2-svp", xc="pbe")
    energy = atoms.get_potential_energy()
    print(f"ase: first geometry {atoms.calc.results['scf_cycles']} cycles, E {energy:.6f} eV "
          f"(minao {ref.cycles} cycles)")


if __name__ == "__main__":
    main()
