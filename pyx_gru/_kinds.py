"""Every cell kind described once, for the Python side.

A *kind* is one cell configuration the kernels run: a class of
``pyx_gru`` with its form (``GRU(reset="before")``, ``LSTM(peephole=True)``).
``KINDS`` holds one frozen :class:`Kind` per kind, in the order the tables
list them; everything that enumerates the cells reads it: ``layers.CELLS``
and ``make_cell``'s aliases, saving and loading (``_saving``), the command
line's table (``__main__.CONFIGS``), the benchmark's cells (``bench.CELLS``),
the memory plan (``_limits``), the reference twins (``reference``) and the
tests' configurations (``tests/conftest.py``).

The kernels describe the same kinds in ``_kinds.pxi`` (gate blocks, the
blocks of the per-step product, state parts, extra arrays); a ``Kind``
reads those numbers through :attr:`Kind.kernel_row` rather than repeating
them, and ``tests/test_kinds.py`` checks that both sides agree.
"""
import inspect
from dataclasses import dataclass
from types import MappingProxyType

from . import _recurrent, _scan

__all__ = ["Kind", "KINDS", "get", "of", "ALIASES"]

# The kernels' rows, read once (a pass reads a kind's row on every call).
_KERNEL_TABLE = _recurrent.kind_table()
# The scan kernels' rows (_scan.pyx: the cells whose gates read only x_t),
# in the same form: no recurrent product, no second state, no extra array.
_SCAN_TABLE = tuple({"n_gates": row["n_gates"], "n_rec": 0, "cell_state": False,
                     "extra": False, "reset_after": False, "peephole": False}
                    for row in _scan.kind_table())


@dataclass(frozen=True)
class Kind:
    """One cell kind.

    Attributes
    ----------
    name : str
        Its name for ``Model(cell=...)`` and ``make_cell`` (``layers.CELLS``).
    id : str
        Its explicit name, which the benchmark and the tests use
        (``"simple_gru"`` for ``"sgru"``); also an alias of ``name``.
    cls : str
        The class, by name, in ``pyx_gru`` (and in ``pyx_gru.reference``).
    form : tuple of (str, object)
        Constructor keywords beyond the sizes, as ``layers.CELLS`` gives them.
    kernel : int
        The kernels' number of the kind (``_recurrent.RNN`` ...; with
        ``scan``, ``_scan.MINGRU`` ...).
    gates : tuple of str
        Gate names, in the order of the column blocks of W, U and b.
    state : tuple of str
        The parts of the state: ``("h",)`` or ``("h", "c")``.
    params : tuple of (str, int or None)
        Parameters beyond W, U and b, zero at initialisation: name and rows
        (None: shape (H,); k: shape (k, H)). The peepholes ``P`` have the
        kernels' ``peephole_rows`` rows: one per gate block that reads
        c_{t-1}, the first ones, then the last block's (o), which reads c_t.
    step : str
        Prefix of its reference step functions in ``pyx_gru.reference``
        (``<step>_step_forward``, ``<step>_step_backward``).
    label : str
        How ``python -m pyx_gru check`` names it.
    bench_label : str or None
        How the benchmark names it; None keeps it out of the benchmark.
    torch : str or None
        The ``torch.nn`` class the benchmark sets against it, if any.
    scan : bool
        Its gates read only x_t, so it has no recurrent weights ``U`` and
        runs in ``_scan`` (products over all steps plus a linear scan)
        rather than in ``_recurrent``.
    """

    name: str
    id: str
    cls: str
    form: tuple
    kernel: int
    gates: tuple
    state: tuple
    params: tuple
    step: str
    label: str
    bench_label: str = None
    torch: str = None
    scan: bool = False

    @property
    def aliases(self):
        """tuple of str: the other names ``make_cell`` accepts."""
        return (self.id,) if self.id != self.name else ()

    @property
    def keywords(self):
        """dict: the constructor keywords (a fresh dict)."""
        return dict(self.form)

    @property
    def cell_class(self):
        """type: the compiled cell class."""
        from . import _cells

        return getattr(_cells, self.cls)

    @property
    def kernel_row(self):
        """dict: the kernels' row of this kind (``_recurrent.kind_table()``)."""
        return (_SCAN_TABLE if self.scan else _KERNEL_TABLE)[self.kernel]

    @property
    def peephole(self):
        """bool: whether the kind has peepholes (the parameter P)."""
        return any(name == "P" for name, _ in self.params)

    @property
    def extra(self):
        """bool: whether its cache keeps ``extra`` (T, B, H)."""
        return self.kernel_row["extra"]

    @property
    def reset_after(self):
        """bool: whether its backward keeps the candidate's input-side
        gradient apart (``dxg``, K rows of (B, H))."""
        return self.kernel_row["reset_after"]

    def param_shapes(self, D, H):
        """dict: the name and shape of every parameter, for sizes D and H."""
        GH = len(self.gates) * H
        shapes = {"W": (D, GH), "U": (H, GH), "b": (GH,)}
        if self.scan:
            del shapes["U"]
        for name, rows in self.params:
            shapes[name] = (H,) if rows is None else (rows, H)
        return shapes


_ALL = (
    Kind("rnn", "rnn", "RNN", (), _recurrent.RNN, ("g",), ("h",), (), "rnn",
         "RNN", "RNN", "RNN"),
    Kind("sgru", "simple_gru", "SimpleGRU", (), _recurrent.SIMPLE_GRU, ("f", "g"), ("h",), (),
         "simple_gru", "SimpleGRU", "SimpleGRU"),
    Kind("gru", "gru_after", "GRU", (("reset", "after"),), _recurrent.GRU_AFTER,
         ("z", "r", "g"), ("h",), (("b_hg", None),), "gru_after", "GRU reset=after",
         "GRU after", "GRU"),
    Kind("gru_before", "gru_before", "GRU", (("reset", "before"),), _recurrent.GRU_BEFORE,
         ("z", "r", "g"), ("h",), (), "gru_before", "GRU reset=before", "GRU before"),
    Kind("mgu", "mgu_after", "MGU", (("reset", "after"),), _recurrent.MGU_AFTER,
         ("f", "g"), ("h",), (("b_hg", None),), "mgu_after", "MGU reset=after", "MGU after"),
    Kind("mgu_before", "mgu_before", "MGU", (("reset", "before"),), _recurrent.MGU_BEFORE,
         ("f", "g"), ("h",), (), "mgu_before", "MGU reset=before", "MGU before"),
    Kind("lstm", "lstm", "LSTM", (), _recurrent.LSTM, ("i", "f", "g", "o"), ("h", "c"), (),
         "lstm", "LSTM", "LSTM", "LSTM"),
    Kind("lstm_peephole", "lstm_peephole", "LSTM", (("peephole", True),), _recurrent.LSTM,
         ("i", "f", "g", "o"), ("h", "c"), (("P", 3),), "lstm", "LSTM peephole"),
    Kind("cifg", "cifg", "CoupledLSTM", (), _recurrent.CIFG, ("f", "g", "o"), ("h", "c"), (),
         "cifg", "CoupledLSTM", "CoupledLSTM"),
    Kind("cifg_peephole", "cifg_peephole", "CoupledLSTM", (("peephole", True),),
         _recurrent.CIFG, ("f", "g", "o"), ("h", "c"), (("P", 2),), "cifg",
         "CoupledLSTM peephole"),
    Kind("mingru", "mingru", "MinGRU", (), _scan.MINGRU, ("z", "g"), ("h",), (), "mingru",
         "minGRU", "minGRU", scan=True),
    Kind("minlstm", "minlstm", "MinLSTM", (), _scan.MINLSTM, ("f", "i", "g"), ("h",), (),
         "minlstm", "minLSTM", "minLSTM", scan=True),
)

#: name -> Kind, in table order.
KINDS = MappingProxyType({k.name: k for k in _ALL})
#: alias -> name.
ALIASES = MappingProxyType({a: k.name for k in _ALL for a in k.aliases})


#: The constructor keywords of recurrent dropout and zoneout (any kind;
#: ``zoneout_c`` the LSTM's only): hyperparameters of training, not part of
#: a kind's form.
REGULARISATION = ("recurrent_dropout", "zoneout", "zoneout_c")


def get(name):
    """The kind called ``name`` (or an alias); KeyError if there is none."""
    return KINDS[ALIASES.get(name, name)]


def _default(cls, key):
    return inspect.signature(cls.__init__).parameters[key].default


def full_form(kind):
    """dict: every constructor keyword of the kind's class beyond the
    sizes and dtype, with the class's defaults filled in (``cell.config``
    less the sizes)."""
    cls = kind.cell_class
    keys = [k for other in _ALL if other.cls == kind.cls for k, _ in other.form]
    form = dict.fromkeys(keys)
    for key in form:
        form[key] = dict(kind.form).get(key, _default(cls, key))
    return form


def of_form(cls_name, form):
    """The kind of class ``cls_name`` (by name) with ``form`` (constructor
    keywords beyond the sizes; a keyword left out takes the class's
    default), or None. Regularisation keywords are not part of a form."""
    form = {k: v for k, v in form.items() if k not in REGULARISATION}
    for kind in _ALL:
        if kind.cls == cls_name:
            full = full_form(kind)
            if set(form) <= set(full) and full == {**{k: _default(kind.cell_class, k)
                                                      for k in full}, **form}:
                return kind
    return None


def of(cell):
    """The kind of a cell (compiled or reference), from its class and form."""
    config = dict(cell.config)
    for key in ("input_size", "hidden_size") + REGULARISATION:
        config.pop(key, None)
    for klass in type(cell).__mro__:
        kind = of_form(klass.__name__, config)
        if kind is not None and issubclass(type(cell), kind.cell_class):
            return kind
    raise TypeError(f"{type(cell).__name__} is not a cell kind of pyx_gru")
