"""SCFbench: the same molecules, the same SCF settings, every initial guess.

Command line: ``scfbench sets | run | report`` (:mod:`scfbench.cli`). Modules: :mod:`scfbench.sets` (molecule
sets), :mod:`scfbench.guesses` (guess names and costs), :mod:`scfbench.jobs` (settings and one job),
:mod:`scfbench.parallel` (local processes or a Dask cluster), :mod:`scfbench.store` (crash-safe results),
:mod:`scfbench.metrics` and :mod:`scfbench.report`.
"""
