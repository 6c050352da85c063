#!/bin/bash
cd /tmp/bench
exec nice -n 10 /work/main/.venv/bin/scfbench run --molecules nci-21-25 --limit 6 \
  --guess minao,atom,huckel,mod_huckel,sap,vsap,1e,pbe-first,oracle --basis def2-svp --xc pbe \
  --workers 2 --out done.sqlite
