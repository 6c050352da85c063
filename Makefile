# Two commands set everything up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow install clean bench-model bench-transfer bench-domain bench-size profile-size bench-matrix train-2h train-v9 train-v10 train-v11 train-v9-local check-wheel

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch 2.13.0 first (the project machine's pip finds its CPU wheel locally; PyPI alone would give the CUDA
# build), then the project in editable mode with its test extras. PySCF is held at the release every committed
# benchmark store was measured with: a release can move an energy by ~1e-6 Ha, the same-energy tolerance.
# `make check-wheel` installs the package as a user does, with the newest PySCF.
PYSCF_PIN := pyscf==2.14.0
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]" "$(PYSCF_PIN)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scfguess demo

# One OpenMP thread per test process: the SCFbench tests run several worker processes at once.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m slow

# ML picks the guess label (default: the default model), WORKERS the worker processes.
ML      ?= ml
WORKERS ?= 2

# A model's SCFbench milestones (PBE/def2-SVP; run on an otherwise idle machine, ~1.5 h on 2 cores).
# Resumable: rerunning skips stored jobs; another model adds only its own ML jobs (a label stored with two
# models, `ml` before and after a default change, is reported per model as ml@SHA8).
BENCH = $(VENV)/bin/scfbench run --basis def2-svp --xc pbe --guess minao,$(ML),oracle --workers $(WORKERS)
bench-model: $(STAMP)
	$(BENCH) --molecules nci-26-40 --limit 15 --out benchmarks/ric-nci/nci-26-40/runs.sqlite
	$(BENCH) --molecules nci-41-60 --limit 15 --out benchmarks/ric-nci/nci-41-60/runs.sqlite
	$(VENV)/bin/scfbench report benchmarks/ric-nci/nci-26-40/runs.sqlite
	$(VENV)/bin/scfbench report benchmarks/ric-nci/nci-41-60/runs.sqlite

# Transfer of the PBE/def2-SVP-trained model to another functional and another basis (nci-26-40, 10 molecules).
TRANSFER = $(VENV)/bin/scfbench run --molecules nci-26-40 --limit 10 --guess minao,$(ML) --workers $(WORKERS)
bench-transfer: $(STAMP)
	$(TRANSFER) --basis def2-svp --xc b3lyp --out benchmarks/transfer/b3lyp-svp/runs.sqlite
	$(TRANSFER) --basis def2-tzvp --xc pbe --out benchmarks/transfer/pbe-tzvp/runs.sqlite
	$(VENV)/bin/scfbench report benchmarks/transfer/b3lyp-svp/runs.sqlite
	$(VENV)/bin/scfbench report benchmarks/transfer/pbe-tzvp/runs.sqlite

# The 2-hour training recipe (nequip-l-v8-ens; models/nequip-l-v8-ens/model_card.md): two members from scratch at
# once (one core each, 70 min), the orbital-gradient metrics of both fine-tuning samples (2 processes, about 30 min
# on a fresh machine), both 15-min fine-tunes at once, then their mean. Resumable: after an interruption run it
# again (finished steps only re-export). In the background:  nohup make train-2h > train-2h.log 2>&1 &
TRAIN = OMP_NUM_THREADS=1 $(PY) -m workflows.train workflows/configs
TRAIN_BOTH = $(TRAIN)/$(1).yaml --no-progress & p=$$!; $(TRAIN)/$(2).yaml --no-progress; s=$$?; wait $$p && [ $$s -eq 0 ]
train-2h: $(STAMP)
	$(call TRAIN_BOTH,nequip-l-v8,nequip-l-v8-s1)
	$(TRAIN)/nequip-l-v8-g.yaml --precompute-metrics 2
	$(TRAIN)/nequip-l-v8-s1-g.yaml --precompute-metrics 2
	$(call TRAIN_BOTH,nequip-l-v8-g,nequip-l-v8-s1-g)
	$(PY) -m workflows.train.ensemble nequip-l-v8-ens nequip-l-v8-g nequip-l-v8-s1-g \
	    --description 'The mean of two members trained from scratch within the 2-hour budget (make train-2h).'

# The wider-domain recipes (nequip-v10-ens, models/nequip-v10-ens/model_card.md, the start of the default's
# train-v11 below; the retired nequip-v9-ens and the local control of its ablation, docs/models.md), after train-2h.
# W phase: both members of nequip-l-v8-ens warm-started with Br and I, the total charge and 2S as inputs, the
# learned charge equilibration and spin-density heads, 90 min on every labelled structure (one core each).
# G phase: the orbital-gradient metrics of both fine-tuning samples (2 processes), both 30-min orbital-gradient
# fine-tunes, their mean. train-v9 fine-tunes on every whole 21-40-atom training molecule and 400 others;
# train-v10 on the same W phase keeps every charged structure in the sample as well. About 3 h each
# (train-v10 reuses train-v9's W phase when it has run: 1.2 h); resumable like train-2h. train-v9-local is
# train-v9 for the local control (no global inputs, no spin heads).
# TRAIN_WIDE: $(1) W-phase configs, $(2) G-phase configs and model name, $(3) description.
define TRAIN_WIDE
	$(call TRAIN_BOTH,$(1)-w,$(1)-s1-w)
	$(TRAIN)/$(2)-g.yaml --precompute-metrics 2
	$(TRAIN)/$(2)-s1-g.yaml --precompute-metrics 2
	$(call TRAIN_BOTH,$(2)-g,$(2)-s1-g)
	$(PY) -m workflows.train.ensemble $(2)-ens runs/models/$(2)-g runs/models/$(2)-s1-g \
	    --description '$(3)'
endef
train-v9: $(STAMP)
	$(call TRAIN_WIDE,nequip-v9,nequip-v9,The mean of two members of nequip-l-v8-ens grown to Br and I with charge equilibration and spin-density heads (make train-v9).)
train-v10: $(STAMP)
	$(call TRAIN_WIDE,nequip-v9,nequip-v10,The mean of two members of nequip-l-v8-ens grown to Br and I with charge equilibration and spin-density heads and fine-tuned with every charged structure kept (make train-v10).)
# train-v11, after train-v10 (the default nequip-v11-ens, models/nequip-v11-ens/model_card.md): both members of
# nequip-v10-ens fine-tuned 30 min more at a third of the learning rate with every open-shell training structure
# kept in the sample as well (their UKS orbital-gradient metric).
train-v11: $(STAMP)
	$(TRAIN)/nequip-v11-g.yaml --precompute-metrics 2
	$(TRAIN)/nequip-v11-s1-g.yaml --precompute-metrics 2
	$(call TRAIN_BOTH,nequip-v11-g,nequip-v11-s1-g)
	$(PY) -m workflows.train.ensemble nequip-v11-ens runs/models/nequip-v11-g runs/models/nequip-v11-s1-g \
	    --description 'The mean of the two members of nequip-v10-ens fine-tuned with the orbital-gradient loss on every radical as well (make train-v11).'
train-v9-local: $(STAMP)
	$(call TRAIN_WIDE,nequip-v9-local,nequip-v9-local,The local control of nequip-v9-ens: the same recipe without global inputs or spin-density heads (make train-v9-local).)

# The wider domain against minao (PBE/def2-SVP): ions, radicals, bromides and iodides, and anions with diffuse
# functions. ML picks the model as in bench-model; on ions also the neutral model with its charge projection
# (CHARGE_ROUTE, the route before the charge-aware default).
DOMAIN = $(VENV)/bin/scfbench run --xc pbe --workers $(WORKERS) --guess minao,$(ML)
CHARGE_ROUTE ?= ml:nequip-l-v8-ens
bench-domain: $(STAMP)
	$(DOMAIN),$(CHARGE_ROUTE) --basis def2-svp --molecules ions --limit 20 --out benchmarks/domain/ions/runs.sqlite
	$(DOMAIN) --basis def2-svp --molecules radicals --limit 15 --no-stability --out benchmarks/domain/radicals/runs.sqlite
	$(DOMAIN) --basis def2-svp --molecules nci-halogen --limit 24 --out benchmarks/domain/nci-halogen/runs.sqlite
	$(DOMAIN) --basis def2-svpd --molecules anions --limit 10 --out benchmarks/domain/anions-svpd/runs.sqlite
	for s in ions radicals nci-halogen anions-svpd; do $(VENV)/bin/scfbench report benchmarks/domain/$$s/runs.sqlite; done

# Size (PBE/def2-SVP, ML against minao): full SCFs at 21-25 (for the plot), 61-100 and > 100 atoms, peptides and polymers up to 115
# atoms, then B3LYP at 61-100 atoms with the converter's default exchange and with minao's (one worker, two threads,
# 10 GB). Hours each; resumable. The guess alone at 200-400 atoms: make profile-size.
# PLOT_GUESS: the ML records to plot (ml@SHA8 picks the default's where a store holds ml of several models).
PLOT_GUESS ?= $(ML)
# The 26-60-atom points of the plot: the default's own wall-ratio stores (15 molecules each).
SIZE_26_60 ?= benchmarks/wall-ratio/nequip-v11-ens-nci-26-40/runs.sqlite benchmarks/wall-ratio/nequip-v11-ens-nci-41-60/runs.sqlite
SIZE = $(VENV)/bin/scfbench run --basis def2-svp --guess minao,$(ML) --workers $(WORKERS)
bench-size: $(STAMP)
	$(SIZE) --xc pbe --molecules nci-21-25 --limit 6 --out benchmarks/size/nci-21-25/runs.sqlite
	$(SIZE) --xc pbe --molecules nci-61-100 --limit 6 --out benchmarks/size/nci-61-100/runs.sqlite
	$(SIZE) --xc pbe --molecules nci-gt100 --limit 3 --out benchmarks/size/nci-gt100/runs.sqlite
	$(SIZE) --xc pbe --molecules peptides --limit 4 --out benchmarks/size/peptides/runs.sqlite
	$(SIZE) --xc pbe --molecules polymers --limit 2 --out benchmarks/size/polymers/runs.sqlite
	OMP_NUM_THREADS=2 $(VENV)/bin/scfbench run --basis def2-svp --xc b3lyp --guess minao,$(ML),$(ML)+sad \
	    --workers 1 --max-memory 10000 --molecules nci-61-100 --limit 4 --out benchmarks/size/b3lyp-nci-61-100/runs.sqlite
	$(VENV)/bin/scfbench report benchmarks/size/nci-21-25/runs.sqlite $(SIZE_26_60) benchmarks/size/nci-61-100/runs.sqlite \
	    benchmarks/size/nci-gt100/runs.sqlite benchmarks/size/peptides/runs.sqlite \
	    benchmarks/size/polymers/runs.sqlite --guess $(PLOT_GUESS) --plot benchmarks/size

# The guess alone where a full SCF pair takes too long (200-400 atoms): its cost against one SCF cycle, its peak
# memory against the SCF's, its gradient norm and energy against minao's (one worker; about an hour).
profile-size: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m workflows.checks.converter_profile peptides:ala20 polymers:polyethylene-66 \
	    polymers:polypropylene-44 --out benchmarks/size/guess-200-400/profile.json

# Sizes x bases x functionals, compact: nci-26-40 (4 molecules), four functionals at def2-SVP, two at def2-TZVP.
MATRIX = $(VENV)/bin/scfbench run --molecules nci-26-40 --limit 4 --guess minao,$(ML) --workers $(WORKERS) \
	--out benchmarks/matrix/runs.sqlite
bench-matrix: $(STAMP)
	$(MATRIX) --basis def2-svp --xc pbe,b3lyp,r2scan,wb97x-d3bj
	$(MATRIX) --basis def2-tzvp --xc pbe,b3lyp
	$(VENV)/bin/scfbench report benchmarks/matrix/runs.sqlite

clean:
	rm -rf $(VENV) build *.egg-info

# The package as a user installs it: a wheel-style `pip install .` (not editable) into a fresh venv, then the ML
# guess from another directory. Fails unless the shipped default model is used (an `ml` row naming it).
WHEEL_VENV := /tmp/scfguess-wheel-check
check-wheel:
	rm -rf $(WHEEL_VENV) && $(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(WHEEL_VENV)/bin/python -m pip install --quiet "torch==2.13.0"
	$(WHEEL_VENV)/bin/python -m pip install --quiet .
	cd /tmp && printf '3\nwater\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n' > scfguess-water.xyz && \
	  OMP_NUM_THREADS=1 $(WHEEL_VENV)/bin/scfguess run scfguess-water.xyz --compare minao | tee scfguess-wheel.out && \
	  grep -q "model $$(cat $(CURDIR)/models/DEFAULT) " scfguess-wheel.out && grep -qE "^  ml +[0-9]+ +yes" scfguess-wheel.out
