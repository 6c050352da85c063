"""Checks of trained models and of the package's interfaces: one command each (``python -m workflows.checks.NAME``),
printing (and mostly storing) one JSON result. Model comparisons on labelled structures and guess quality are in
:mod:`~workflows.checks.evaluate`; the per-model checks share the command line of :mod:`~workflows.checks.model_result`.
"""
