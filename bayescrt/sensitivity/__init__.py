"""Sensitivity analyses: grids of fits that resume after a crash and scale out on Dask.

A :class:`Grid` crosses priors on the exposure's log-HR, covariate sets, model
families and data subsets; every combination is a *cell*. With competing risks (``Grid(cause=...)``, or
a spec's ``[competing_risks]``) each cell is the cause-specific HR of the cause of interest. :func:`run` fits
every cell and writes ``OUT/cells/<cell>.nc`` (a saved :class:`~bayescrt.Fit`)
and ``OUT/manifest.json`` (each cell's parameters, seed, status, time and file).

Resumable: a cell's file is written atomically (temporary file, then rename)
and carries its *fingerprint* (the hash of its parameters, seed, sampler
settings and data); a rerun keeps a cell only when its file loads, passes the
content hash that :func:`bayescrt.load` checks, and has the fingerprint the
cell has now. Everything else (never started, killed mid-cell, truncated or
corrupt file, changed settings) is fitted again. Seeds are per cell, derived
from the grid's seed and the cell's name, so a cell's draws do not depend on
which other cells exist, in which order they run, or on which machine.

Compile once: cells are grouped by model structure (family, covariate set and
the prior's distribution); a group runs in one process with one
:class:`~bayescrt.compiled.CompiledModels`, so data and prior hyperparameters
change between its cells without recompiling. The run reports the number of
compilations it made.

Scale-out: ``scheduler=`` (a ``dask.distributed`` address, or a ``Client``)
sends each group to the cluster as one task; Dask reruns the task of a worker
that dies, and the rerun skips the cells already written. Workers write into
``out`` directly, so it must be a filesystem they share. Without a scheduler,
``workers`` local processes run the groups (1: in this process).

Named priors on the exposure's log-HR (Spiegelhalter, Freedman and Parmar,
J R Stat Soc A 1994), from the clinically important HR ``h``
(``important_hr``, default 1.25):

* ``sceptical``: ``Normal(0, log(h) / 1.645)``, P(HR > h) = 5%;
* ``enthusiastic``: ``Normal(log(h), log(h) / 1.645)``, P(HR < 1) = 5%;
* ``neutral``: the analysis' default prior (weakly informative; see
  :mod:`bayescrt.priors`);
* any explicit prior dict with a ``name``, e.g.
  ``{"name": "harm", "dist": "Normal", "mu": 0.1, "sigma": 0.05}`` (original scale).

The package's modules, each importing only those before it (no cycles):
``grid`` (the grid and its cells: named priors, checks, spec, subsets, seeds,
fingerprints) -> ``cells`` (per-cell statistics: a cell's inputs and fit, the
log prior, the total log-likelihood, the cell's row of the table) -> ``store``
(the output folder: lock, atomic writes, manifest, compilation journal, cell
files) -> ``table`` (:class:`SensitivityResult`: the table and the plot) ->
``runners`` (:func:`run`: this process, local processes or Dask).
"""

from __future__ import annotations

from .grid import CONFOUNDING_KEYS, NAMED_PRIORS, OPERATORS, SENSITIVITY_KEYS, Z95, Cell, Grid, named_prior
from .cells import fit_cell, loglik_total
from .store import JOURNAL
from .table import TABLE_COLUMNS, SensitivityResult
from .runners import run

# private, but the tests use them as bayescrt.sensitivity.<name>
from .grid import _subset  # noqa: F401
from .cells import _cell_inputs  # noqa: F401
from .store import _lock, _valid  # noqa: F401

__all__ = ["CONFOUNDING_KEYS", "Cell", "Grid", "JOURNAL", "NAMED_PRIORS", "OPERATORS", "SENSITIVITY_KEYS",
           "SensitivityResult", "TABLE_COLUMNS", "Z95", "fit_cell", "loglik_total", "named_prior", "run"]
