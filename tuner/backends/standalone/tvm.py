"""Run a TVM Relax library (``export_library``) in a VM on the CPU.

``runtime``: ``library`` (the ``.so`` in the folder), ``inputs`` (name, static shape and
dtype of each, in call order) and ``threads`` (the size of TVM's thread pool).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

# The distributions a bundle needs besides numpy (pinned in its requirements.txt); TVM's
# runtime is in the compiler wheel.
REQUIRES = ("apache-tvm", "apache-tvm-ffi")


class TvmSession:
    """A Relax VM over the compiled library, with input buffers allocated once.

    Inputs and outputs cross through DLPack views: ``Tensor.copyfrom`` and ``.numpy()``
    cost about 10 µs each per call here, more than the whole digits MLP computes in, while
    ``np.copyto`` into a view of the input buffer and a copy out of a view of the result
    cost under 1 µs. Outputs are copied, because the VM may reuse their storage.
    """

    def __init__(self, library: Path, inputs: list[dict[str, Any]]) -> None:
        import tvm
        from tvm import relax

        device = tvm.cpu()
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), device)
        self._main = self._vm["main"]
        self._tensor_type = tvm.runtime.Tensor
        self.input_names = [spec["name"] for spec in inputs]
        self._buffers = [tvm.runtime.empty(spec["shape"], spec["dtype"], device)
                         for spec in inputs]
        self._views = [np.from_dlpack(buffer) for buffer in self._buffers]
        self.details: dict[str, Any] = {}
        # Bound once: ``run`` is the timed call.
        self._copyto, self._from_dlpack = np.copyto, np.from_dlpack

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name, view in zip(self.input_names, self._views, strict=True):
            value = inputs[name]
            if value.shape != view.shape:
                raise ValueError(f"input {name!r} has shape {value.shape}; this artifact "
                                 f"was compiled for {view.shape}")
            self._copyto(view, value, casting="same_kind")
        result = self._main(*self._buffers)
        if isinstance(result, self._tensor_type):
            return [self._to_numpy(result)]
        return [self._to_numpy(item) for item in result]

    def _to_numpy(self, tensor: Any) -> np.ndarray:
        """A copy of a VM output; through DLPack, or ``.numpy()`` for dtypes DLPack lacks."""
        try:
            return self._from_dlpack(tensor).copy()
        except (BufferError, TypeError, RuntimeError):
            return tensor.numpy()

    def close(self) -> None:
        self._main = self._vm = None
        self._buffers, self._views = [], []


def open_session(folder: Path, runtime: dict[str, Any]) -> TvmSession:
    threads = int(runtime["threads"])
    # TVM sizes its pool from TVM_NUM_THREADS when the pool starts, and its default (half
    # the hardware threads) ignores the cores this process was given. Binding is off so the
    # pool's threads keep the process's affinity.
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["TVM_BIND_THREADS"] = "0"
    import tvm

    session = TvmSession(Path(folder) / runtime["library"], runtime["inputs"])
    # Starts the calling thread's pool now rather than inside the first timed call;
    # mode 1 ("big cores") with an explicit count uses exactly ``threads`` workers.
    tvm.get_global_func("runtime.config_threadpool")(1, threads)
    return session
