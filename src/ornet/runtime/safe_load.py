"""Reading checkpoint and weights files without ever unpickling an object.

Every checkpoint ornet reads goes through these two functions: `safe_torch_load`
(``torch.load(weights_only=True)``: a file holding anything but tensors and plain containers, a
pickled object that could run code when unpickled, is refused with an `OrnetError` naming it)
and `check_safetensors` (a ``.safetensors`` file that is not one, a pickle renamed say, is
refused likewise). `models.weights` re-exports them (`models.weights.safe_torch_load`).
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import OrnetError


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (for one-line errors)."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def safe_torch_load(path: str | Path, allow: Sequence[Any] = ()) -> Any:
    """`torch.load(path, weights_only=True)` on CPU, with one-line `OrnetError`s naming the file.

    weights_only is passed explicitly (never left to torch's default, which the environment
    variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD can turn off): a file whose pickle names any
    other global (an object whose unpickling could run code) is refused, not loaded.
    `allow`: extra globals accepted for this one call only (``torch.serialization.safe_globals``,
    a context: the process-wide allowlist is never changed), e.g. `numpy_scalar_globals()`.
    """
    p = Path(path)
    if not p.is_file():
        raise OrnetError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            if allow:
                with torch.serialization.safe_globals(list(allow)):
                    return torch.load(p, map_location="cpu", weights_only=True)
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        m = re.search(r"GLOBAL (\S+)", str(err))
        culprit = f" ({m.group(1)})" if m else ""
        raise OrnetError(f"{p}: contains objects other than tensors{culprit} and is refused: ornet loads "
                         "weights only, never pickled objects (they could run code)") from None
    except Exception as err:  # not a torch file at all, truncated, ...
        raise OrnetError(f"{p}: cannot read weights ({type(err).__name__}: {first_line(err)})") from None


NUMPY_DTYPES = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                "Float16", "Float32", "Float64")


def numpy_scalar_globals() -> list[Any]:
    """The globals a pickled numeric numpy scalar names (``np.float64(0.9)`` saved as, e.g., a
    checkpoint's ``best_acc``), for `safe_torch_load(allow=...)`: the scalar constructor under its
    numpy 1.x and 2.x names (``numpy.core.multiarray.scalar``, ``numpy._core.multiarray.scalar``),
    ``numpy.dtype`` and the numeric dtype classes (``numpy.dtypes.Float64DType``, ...). Nothing
    else: object arrays, ``numpy.core.multiarray._reconstruct`` (whole arrays) and every other
    global stay refused."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
                          np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    allowed += [getattr(dtypes, f"{n}DType") for n in NUMPY_DTYPES if dtypes is not None and hasattr(dtypes, f"{n}DType")]
    return allowed


def check_safetensors(path: str | Path) -> None:
    """OrnetError unless `path` starts with a valid safetensors header (8-byte length + JSON).

    Reading the header never executes anything; a pickle or a `torch.save` file renamed to
    ``.safetensors`` fails here with a message saying what it is not.
    """
    p = Path(path)
    if not p.is_file():
        raise OrnetError(f"{p}: no such file")
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            f.keys()
    except Exception as err:  # SafetensorError (bad header), OSError
        raise OrnetError(f"{p}: not a safetensors file ({first_line(err)}); ornet reads model weights "
                         "only from safetensors and never unpickles them") from None
