"""pyx_gru: recurrent cells to understand and to run fast.

The cells (``RNN``, ``SimpleGRU``, ``GRU``, ``MGU``, ``LSTM``,
``CoupledLSTM``, ``MinGRU``, ``MinLSTM``) share one interface::

    cell = pyx_gru.GRU(input_size=8, hidden_size=16, reset="after", seed=0)
    y, state, cache = cell.forward(x, state0=None, lengths=None)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate=None)
    y, state, _ = cell.forward(x, cache=False)    # inference: no cache kept

with compiled forward and backward passes over whole sequences.
``pyx_gru.reference`` has the same cells in plain NumPy, and ``gradcheck``
checks any cell's gradients against finite differences. ``interop``
converts weights from and to PyTorch and Keras. ``cell.save(path)`` writes a
cell to an ``.npz`` file (no pickle) and ``pyx_gru.load(path)`` reads it back.

Module map
----------
Each module of the package, what it holds, and the modules of pyx_gru it may
import. A name with a leading underscore is a private module, not part of
the API. ``tests/test_module_map.py`` checks every import against this
table, which the README repeats.

.. list-table::
   :header-rows: 1

   * - module
     - holds
     - may import
   * - ``pyx_gru``
     - the public names: the cells, ``gradcheck``, ``load``, ``Model``,
       ``fit``, ``evaluate``, ``predict``, ``History``
     - ``_cells``, ``_gradcheck``, ``_saving``, ``diagnostics``,
       ``interop``, ``layers``, ``losses``, ``optim``, ``reference``,
       ``train``
   * - ``__main__``
     - ``python -m pyx_gru`` and its subcommands ``docs``, ``check``,
       ``compare``
     - ``pyx_gru``, ``_kinds``, ``_site``, ``experiments``, ``reference``
   * - ``_recurrent``
     - compiled: the kernels, one sequence driver for every cell, forward
       and backward, and its thread team (with ``_gemm.h``, ``_simd.h``,
       ``_activations.h``)
     - ``_blas``
   * - ``_scan``
     - compiled: the kernels of the cells whose gates read only x_t (minGRU,
       minLSTM): products with a packed W a chunk of steps at a time and a
       linear scan over time, split over the thread team by batch rows or,
       with fewer than 16 rows a thread, by blocks of time (with ``_gemm.h``,
       and ``_scan.h``, its pointwise work per vector path)
     - ``_blas``
   * - ``_blas``
     - compiled: the BLAS calls of the kernels (SciPy's) and the hooks that
       hold the BLAS's threads
     - —
   * - ``_cpuid``
     - compiled: the benchmark's ``--hide-avx512``, CPUID answered without
       AVX-512 for every library of the process (Linux on x86-64)
     - —
   * - ``_cells``
     - ``Cell``, ``RNN``, ``SimpleGRU``, ``GRU``, ``MGU``, ``LSTM``,
       ``CoupledLSTM``, ``MinGRU``, ``MinLSTM``, ``Cache``: the cells around
       the compiled passes
     - ``_kinds``, ``_limits``, ``_recurrent``, ``_saving``, ``_scan``,
       ``_threads``, ``_validation``, ``_workspace``
   * - ``_files``
     - writing a file atomically, the one place that writes one
     - —
   * - ``_gradcheck``
     - ``gradcheck``: gradients against finite differences
     - ``_cells``, ``_limits``, ``_validation``
   * - ``_json``
     - JSON text in and out (``History``, ``Comparison``)
     - ``_files``
   * - ``_kinds``
     - one description of every cell kind: names, gates, state parts,
       parameters, labels, the kernels' row
     - ``_cells``, ``_recurrent``, ``_scan``
   * - ``_limits``
     - the memory a call needs, checked before it allocates
     - ``_recurrent``, ``_scan``
   * - ``_saving``
     - ``.npz`` files of cells, models and optimisers; ``load``
     - ``pyx_gru``, ``_cells``, ``_files``, ``_kinds``, ``_limits``,
       ``_validation``, ``layers``, ``optim``
   * - ``_site``
     - the documentation build (``python -m pyx_gru docs``)
     - —
   * - ``_threads``
     - binds the OpenBLAS behind SciPy into the kernels' thread team
     - ``_blas``
   * - ``_validation``
     - the checks of arguments before compiled code sees them
     - ``_workspace``
   * - ``_workspace``
     - recycled memory for the large arrays of the passes
     - —
   * - ``reference``
     - the cells in plain NumPy, one step at a time
     - ``_cells``, ``_kinds``
   * - ``interop``
     - weights from and to PyTorch and Keras
     - ``_cells``, ``_validation``
   * - ``losses``
     - losses with their gradients, masked by lengths
     - ``_validation``
   * - ``optim``
     - SGD, RMSProp, Adam, global-norm clipping, weight noise
     - ``_saving``, ``_validation``
   * - ``layers``
     - ``Recurrent``, ``Bidirectional``, ``Stack``, ``Dense``, ``Model``;
       the cell names
     - ``_cells``, ``_kinds``, ``_saving``, ``_validation``, ``losses``
   * - ``train``
     - ``fit``, ``evaluate``, ``predict``, ``History``, checkpoints
     - ``_json``, ``_saving``, ``_validation``, ``layers``, ``losses``,
       ``optim``
   * - ``diagnostics``
     - exact state gradients and Jacobians, gate statistics, gradient flow
     - ``_cells``, ``_validation``, ``layers``, ``losses``, ``reference``
   * - ``experiments``
     - ``compare`` at equal parameter counts, ``Comparison``, the
       ``compare`` command
     - ``pyx_gru``, ``_blas``, ``_files``, ``_json``, ``_validation``,
       ``diagnostics``, ``layers``, ``optim``, ``tasks``, ``train``
   * - ``bench``
     - the benchmark, ``python -m pyx_gru.bench``
     - ``pyx_gru``, ``_cpuid``, ``_files``, ``_kinds``, ``_recurrent``,
       ``_scan``, ``_workspace``, ``interop``, ``reference``
   * - ``tasks``
     - the task generators and the registry ``TASKS``, ``make_task``
     - ``tasks._task``, ``tasks.chorales``, ``tasks.digits``,
       ``tasks.polyphonic``, ``tasks.synthetic``, ``tasks.text``
   * - ``tasks._task``
     - ``Task`` and the counting models behind the baselines
     - ``_validation``, ``losses``
   * - ``tasks.synthetic``
     - adding, copy memory, temporal order, embedded Reber
     - ``_validation``, ``tasks._task``
   * - ``tasks.digits``
     - scikit-learn's digits as sequences
     - ``tasks._task``
   * - ``tasks.chorales``
     - Bach chorales from music21's corpus
     - ``_files``, ``_validation``, ``tasks._task``
   * - ``tasks.polyphonic``
     - the four polyphonic music sets, shipped
     - ``_files``, ``tasks._task``, ``tasks.chorales``
   * - ``tasks.text``
     - the standard library's source as text
     - ``_validation``, ``tasks._task``
"""
from ._cells import GRU, LSTM, MGU, RNN, Cache, Cell, CoupledLSTM, MinGRU, MinLSTM, SimpleGRU
from ._gradcheck import gradcheck
from ._saving import load
from . import interop, reference
# training and diagnostics (issue 6)
from . import diagnostics, layers, losses, optim, train
from .layers import Model
from .train import History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = ["RNN", "SimpleGRU", "GRU", "MGU", "LSTM", "CoupledLSTM", "MinGRU", "MinLSTM",
           "Cell", "Cache", "gradcheck", "load", "reference", "interop"]
__all__ += ["layers", "losses", "optim", "train", "diagnostics", "Model", "fit", "evaluate",
            "predict", "History"]
