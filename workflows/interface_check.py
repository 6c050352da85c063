"""One real run of the PySCF hook and the ASE calculator on ethanol (PBE/def2-SVP, default model) against minao.

    python -m workflows.interface_check
"""
import sys, warnings
warnings.simplefilter("ignore")
from ase.build import molecule
from pyscf import dft, gto
import scfguess
from scfguess.ase import SCFGuessCalculator
atoms = molecule("CH3CH2OH")
mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], basis="def2-svp", verbose=0)
ref = dft.RKS(mol, xc="pbe").density_fit().run()
mf = scfguess.apply(dft.RKS(mol, xc="pbe").density_fit()).run()
print(f"hook: minao {ref.cycles} cycles, ml {mf.cycles} cycles, dE {mf.e_tot - ref.e_tot:.1e} Ha, info {mf.scfguess_info}")
atoms.calc = SCFGuessCalculator(basis="def2-svp", xc="pbe")
e = atoms.get_potential_energy()
print(f"ase: first geometry {atoms.calc.results['scf_cycles']} cycles, E {e:.6f} eV (minao {ref.cycles} cycles)")

