"""Optimisers, global-norm gradient clipping and weight noise.

An optimiser updates a dict of parameter arrays in place from a dict of
gradients with the same keys: ``opt.step(params, grads)``. Its state
(momentum buffers, moment estimates) is kept per key, in the parameters'
dtype, and created at the first step. The update formulas are PyTorch's
(``torch.optim``, 2.13.0), written out in each class, so a run can be
compared with PyTorch step by step (the tests do).
"""
import contextlib
import math

import numpy as np

from ._validation import check_flag, check_nonnegative as _nonnegative, check_real

__all__ = ["Optimizer", "SGD", "RMSProp", "Adam", "make_optimizer", "clip_grad_norm",
           "global_norm", "weight_noise"]


def _unit(name, value):
    value = check_real(name, value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return value


class Optimizer:
    """Base class: checks the dicts, keeps per-key state, counts steps.

    Parameters
    ----------
    lr : float
        The learning rate, > 0. May be changed between steps (``opt.lr = ...``).
    weight_decay : float
        L2 penalty: ``g <- g + weight_decay * p`` before the update (as
        PyTorch's ``weight_decay``; not AdamW's decoupled decay).
    """

    def __init__(self, lr, weight_decay=0.0):
        self.lr = check_real("lr", lr)
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.state = {}
        self.t = 0

    def step(self, params, grads):
        """Update every array of ``params`` in place.

        Parameters
        ----------
        params : dict of str to ndarray
            Float arrays, changed in place.
        grads : dict of str to ndarray
            The same keys and shapes, real numbers. Not changed.

        Returns
        -------
        None
            ``params`` are updated in place; a step refused (a ``TypeError``
            or ``ValueError``) changes nothing.
        """
        if set(params) != set(grads):
            raise ValueError(
                f"params and grads need the same keys; only in params "
                f"{sorted(set(params) - set(grads))}, only in grads {sorted(set(grads) - set(params))}"
            )
        cast = {}
        for k, p in params.items():
            g = np.asarray(grads[k])
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"params[{k!r}] must be a float ndarray, got {type(p).__name__}")
            if not p.flags.writeable:
                raise ValueError(f"params[{k!r}] is read-only; the step updates it in place")
            if g.shape != p.shape:
                raise ValueError(f"grads[{k!r}] must have shape {p.shape}, got {g.shape}")
            if g.dtype.kind not in "iuf":
                raise TypeError(f"grads[{k!r}] must hold real numbers, got dtype {g.dtype}")
            # every check before the first update: a refused step changes nothing
            cast[k] = g.astype(p.dtype, copy=False)
        for k, p in params.items():
            for name, a in self.state.get(k, {}).items():
                if a is not None and (a.shape != p.shape or a.dtype != p.dtype):
                    raise ValueError(f"the state of {k!r} ({name}: {a.dtype} {a.shape}) does not "
                                     f"fit the parameter ({p.dtype} {p.shape})")
        self.t += 1
        for k, p in params.items():
            g = cast[k]
            if self.weight_decay:
                g = g + self.weight_decay * p
            if k not in self.state:
                self.state[k] = self._init_state(p)
            self._update(p, g, self.state[k])

    def _init_state(self, p):
        return {}

    def _update(self, p, g, state):
        raise NotImplementedError

    # -- state: to continue a run exactly where it stopped -----------------

    def settings(self):
        """Return the constructor's arguments.

        Returns
        -------
        dict
            ``type(opt)(**opt.settings())`` is a fresh optimiser with the same
            settings (``lr`` is the current one): ``lr`` and ``weight_decay``.
        """
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def state_dict(self):
        """Everything the next step depends on, as plain values and arrays.

        Returns
        -------
        dict
            ``"optimizer"`` (the class name), ``"settings"``
            (:meth:`settings`), ``"t"`` (steps taken) and ``"state"``:
            {parameter name: {buffer name: a copy of the array, or None
            for a buffer this optimiser's settings do not use}}.
        """
        return {"optimizer": type(self).__name__, "settings": self.settings(), "t": self.t,
                "state": {k: {b: None if a is None else a.copy() for b, a in bufs.items()}
                          for k, bufs in self.state.items()}}

    def load_state_dict(self, state):
        """Take the settings, step count and state of ``state`` (from
        :meth:`state_dict` of an optimiser of the same class); the arrays
        are copied.

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns it.

        Returns
        -------
        None
            The optimiser is changed in place.

        Raises
        ------
        ValueError
            If it is another class's, or its settings, step count or
            buffers are not what this class keeps (each buffer's shape is
            checked against its parameter at the next step).
        TypeError
            If ``state`` or one of its parts has the wrong type.
        """
        fresh = self.from_state_dict(state)
        if type(fresh) is not type(self):
            raise ValueError(f"a {state['optimizer']} state cannot be loaded into a "
                             f"{type(self).__name__}")
        vars(self).update(vars(fresh))

    @staticmethod
    def from_state_dict(state):
        """A new optimiser from :meth:`state_dict`'s output (see
        :meth:`load_state_dict` for what is checked).

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns it.

        Returns
        -------
        Optimizer
            An optimiser of the class named in ``state``, with its settings,
            step count and (copied) buffers.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        keys = {"optimizer", "settings", "t", "state"}
        if set(state) != keys:
            raise ValueError(f"state must have the keys {sorted(keys)}; missing "
                             f"{sorted(keys - set(state))}, unexpected {sorted(set(state) - keys)}")
        classes = {cls.__name__: cls for cls in _OPTIMIZERS.values()}
        cls = classes.get(state["optimizer"]) if isinstance(state["optimizer"], str) else None
        if cls is None:
            raise ValueError(f"optimizer must be one of {sorted(classes)}, got {state['optimizer']!r}")
        settings = state["settings"]
        if not isinstance(settings, dict):
            raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
        try:
            opt = cls(**settings)
        except TypeError as exc:
            raise ValueError(f"settings of a {cls.__name__}: {exc}") from None
        if opt.settings().keys() != settings.keys():
            raise ValueError(f"settings of a {cls.__name__} must have the keys "
                             f"{sorted(opt.settings())}, got {sorted(settings)}")
        t = state["t"]
        if type(t) is not int or t < 0:
            raise ValueError(f"t must be an int >= 0, got {t!r}")
        opt.t = t
        buffers = state["state"]
        if not isinstance(buffers, dict):
            raise TypeError(f"state['state'] must be a dict, got {type(buffers).__name__}")
        for key, bufs in buffers.items():
            like = opt._init_state(np.zeros(1))
            if not isinstance(bufs, dict) or set(bufs) != set(like):
                raise ValueError(f"state of {key!r} must have the buffers {sorted(like)} of a "
                                 f"{cls.__name__} with these settings, got "
                                 f"{sorted(bufs) if isinstance(bufs, dict) else bufs!r}")
            own = {}
            for name, a in bufs.items():
                # SGD creates its momentum buffer at the first step (None before)
                if a is None:
                    if like[name] is not None and not (cls is SGD and name == "b"):
                        raise ValueError(f"state of {key!r}: buffer {name!r} must be an array")
                    own[name] = None
                    continue
                if like[name] is None and not (cls is SGD and name == "b"):
                    raise ValueError(f"state of {key!r}: buffer {name!r} is not used with these "
                                     "settings and must be None")
                a = np.asarray(a)
                if a.dtype not in (np.float32, np.float64):
                    raise ValueError(f"state of {key!r}: buffer {name!r} must hold float32 or "
                                     f"float64, got {a.dtype}")
                own[name] = np.array(a, order="C")
            opt.state[key] = own
        return opt

    def save(self, path):
        """Save the settings, step count and state to an ``.npz`` file (no
        pickle; written atomically), to continue training later:
        ``pyx_gru.load(path)`` gives back an equal optimiser.

        Parameters
        ----------
        path : str or os.PathLike
            The file, used exactly as given (no ``.npz`` suffix is added).

        Returns
        -------
        pathlib.Path
            The path written.
        """
        from ._saving import save_optimizer

        return save_optimizer(self, path)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("state", "t"))
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    As ``torch.optim.SGD`` with dampening 0::

        b <- momentum * b + g            (b = g at the first step)
        d = g + momentum * b  if nesterov else  b
        p <- p - lr * d

    and ``p <- p - lr * g`` when momentum is 0.

    Parameters
    ----------
    lr : float
        The learning rate, > 0 (default 0.01).
    momentum : float
        In [0, 1).
    nesterov : bool
        Nesterov momentum (needs momentum > 0).
    weight_decay : float
        L2 penalty added to the gradient, ``g <- g + weight_decay * p`` (see
        ``Optimizer``).
    """

    def __init__(self, lr=0.01, momentum=0.0, *, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.momentum = _unit("momentum", momentum)
        self.nesterov = check_flag("nesterov", nesterov)
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov needs momentum > 0")

    def settings(self):
        """Return the constructor's arguments.

        Returns
        -------
        dict
            ``type(opt)(**opt.settings())`` is a fresh optimiser with the same
            settings (``lr`` is the current one), ``momentum`` and ``nesterov`` among them.
        """
        return {**super().settings(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _init_state(self, p):
        return {"b": None}

    def _update(self, p, g, state):
        if self.momentum:
            if state["b"] is None:
                state["b"] = g.copy()
            else:
                state["b"] *= self.momentum
                state["b"] += g
            d = g + self.momentum * state["b"] if self.nesterov else state["b"]
        else:
            d = g
        p -= self.lr * d


class RMSProp(Optimizer):
    """RMSProp (Tieleman and Hinton 2012), optionally centered and with momentum.

    As ``torch.optim.RMSprop``, with eps added *outside* the square root::

        v <- alpha * v + (1 - alpha) * g^2
        centered:  m <- alpha * m + (1 - alpha) * g,   s = sqrt(v - m^2) + eps
        else:      s = sqrt(v) + eps
        momentum > 0:  b <- momentum * b + g / s,  p <- p - lr * b
        else:          p <- p - lr * g / s

    (v, m and b start at 0.) The centered form with momentum is Graves'
    2013 variant.

    Parameters
    ----------
    lr : float
        The learning rate, > 0 (default 0.01).
    alpha : float
        Decay of the squared-gradient average, in [0, 1).
    eps : float
        Added to the denominator s outside the square root, >= 0.
    momentum : float
        In [0, 1).
    centered : bool
        Divide by the gradient's standard deviation, sqrt(v - m^2), rather
        than by its root mean square.
    weight_decay : float
        L2 penalty added to the gradient, ``g <- g + weight_decay * p`` (see
        ``Optimizer``).
    """

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, *, momentum=0.0, centered=False,
                 weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.alpha = _unit("alpha", alpha)
        self.eps = _nonnegative("eps", eps)
        self.momentum = _unit("momentum", momentum)
        self.centered = check_flag("centered", centered)

    def settings(self):
        """Return the constructor's arguments.

        Returns
        -------
        dict
            ``type(opt)(**opt.settings())`` is a fresh optimiser with the same
            settings (``lr`` is the current one), ``alpha``, ``eps``, ``momentum`` and ``centered`` among
            them.
        """
        return {**super().settings(), "alpha": self.alpha, "eps": self.eps,
                "momentum": self.momentum, "centered": self.centered}

    def _init_state(self, p):
        zeros = lambda: np.zeros_like(p)  # noqa: E731
        return {"v": zeros(), "m": zeros() if self.centered else None,
                "b": zeros() if self.momentum else None}

    def _update(self, p, g, state):
        a = self.alpha
        v = state["v"]
        v *= a
        v += (1 - a) * g * g
        if self.centered:
            m = state["m"]
            m *= a
            m += (1 - a) * g
            s = np.sqrt(v - m * m) + self.eps
        else:
            s = np.sqrt(v) + self.eps
        if self.momentum:
            b = state["b"]
            b *= self.momentum
            b += g / s
            p -= self.lr * b
        else:
            p -= self.lr * (g / s)


class Adam(Optimizer):
    """Adam (Kingma and Ba 2015).

    As ``torch.optim.Adam`` (L2 ``weight_decay``, no amsgrad), at step t = 1, 2, ...::

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        s = sqrt(v) / sqrt(1 - beta2^t) + eps
        p <- p - (lr / (1 - beta1^t)) * m / s

    Parameters
    ----------
    lr : float
        The learning rate, > 0 (default 0.001).
    betas : (float, float)
        The pair (beta1, beta2), the decays of the gradient's and the squared
        gradient's averages, each in [0, 1).
    eps : float
        Added to the denominator s, after the bias correction, >= 0.
    weight_decay : float
        L2 penalty added to the gradient, ``g <- g + weight_decay * p`` (see
        ``Optimizer``).
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        b1, b2 = betas
        self.betas = (_unit("betas[0]", b1), _unit("betas[1]", b2))
        self.eps = _nonnegative("eps", eps)

    def settings(self):
        """Return the constructor's arguments.

        Returns
        -------
        dict
            ``type(opt)(**opt.settings())`` is a fresh optimiser with the same
            settings (``lr`` is the current one), ``betas`` (a list) and ``eps`` among them.
        """
        return {**super().settings(), "betas": list(self.betas), "eps": self.eps}

    def _init_state(self, p):
        return {"m": np.zeros_like(p), "v": np.zeros_like(p)}

    def _update(self, p, g, state):
        b1, b2 = self.betas
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        bias1 = 1 - b1 ** self.t
        bias2_sqrt = np.sqrt(1 - b2 ** self.t)
        s = np.sqrt(v) / bias2_sqrt + self.eps
        p -= (self.lr / bias1) * (m / s)


_OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(optimizer, lr=None, **kwargs):
    """An optimiser from a name (``"sgd"``, ``"rmsprop"``, ``"adam"``) or an instance.

    Parameters
    ----------
    optimizer : str or Optimizer
        An instance is returned as it is (then ``lr`` and ``kwargs`` must be
        empty).
    lr : float, optional
        None takes the class default (SGD 0.01, RMSProp 0.01, Adam 0.001).
    **kwargs
        The class's other keywords.

    Returns
    -------
    Optimizer
        ``optimizer`` itself, or a new ``SGD``, ``RMSProp`` or ``Adam``.
    """
    if isinstance(optimizer, Optimizer):
        if lr is not None or kwargs:
            raise ValueError("pass lr and options to the optimiser's constructor, not with an instance")
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)} or an Optimizer, got {optimizer!r}")
    cls = _OPTIMIZERS[optimizer.lower()]
    return cls(**kwargs) if lr is None else cls(lr, **kwargs)


def global_norm(grads):
    """The global norm of the gradients: the square root of the sum of squares of every entry.

    Parameters
    ----------
    grads : dict of str to ndarray
        Gradients of any shapes (not changed).

    Returns
    -------
    float
        ||g||, over all arrays together, summed in float64.
    """
    return float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values())))


def clip_grad_norm(grads, max_norm):
    """Rescale gradients in place so their global norm is at most ``max_norm``.

    Pascanu, Mikolov and Bengio (2013), algorithm 1: with ||g|| the norm of
    all gradients together, if ||g|| > max_norm then g <- max_norm g / ||g||.
    (Exactly this: PyTorch's ``clip_grad_norm_`` divides by ||g|| + 1e-6.)

    Parameters
    ----------
    grads : dict of str to ndarray
        Changed in place.
    max_norm : float
        The threshold theta > 0.

    Returns
    -------
    float
        ||g|| before clipping.
    """
    max_norm = check_real("max_norm", max_norm)
    for k, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(f"grads[{k!r}] must be a float ndarray (scaled in place), got "
                            f"{getattr(g, 'dtype', type(g).__name__)}")
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norm = global_norm(grads)
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


@contextlib.contextmanager
def weight_noise(params, std, rng):
    """Add Gaussian noise to the weights for the duration of a ``with`` block.

    Chung et al. (2014), after Graves (2011): each step's forward and
    backward passes run on w + e, e ~ N(0, std^2) drawn afresh for every
    entry of every parameter; the update is then applied to the clean
    weights w. On entry, the noise is added in place (the arrays stay the
    same objects, so layers and caches keep working); on exit, even on an
    exception, every array gets its clean values back exactly.

    Parameters
    ----------
    params : dict of str to ndarray
        Changed in place inside the block.
    std : float
        The noise's standard deviation; 0 does nothing (and draws nothing).
    rng : numpy.random.Generator
        Draws the noise, key by key in the dict's order.

    Yields
    ------
    dict of str to ndarray
        The noise added to each array.
    """
    std = _nonnegative("std", std)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if std == 0:
        yield {}
        return
    clean = {k: p.copy() for k, p in params.items()}
    noise = {}
    try:
        for k, p in params.items():
            noise[k] = (std * rng.standard_normal(p.shape)).astype(p.dtype)
            p += noise[k]
        yield noise
    finally:
        for k, p in params.items():
            np.copyto(p, clean[k])
