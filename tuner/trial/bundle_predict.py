"""Run the model in this folder, opened exactly as Podium timed it.

    python predict.py INPUTS.npz OUT.npz

``INPUTS.npz`` holds one array per model input, named as the model names it (any number of
rows; inputs the bundle holds as constants may be left out). ``OUT.npz`` gets one array per
output, by name. From Python::

    from predict import load
    model = load()                      # or load("path/to/bundle")
    outputs = model.run({"x": rows})    # a list of numpy arrays, in the model's output order

``inference.json`` holds every option the session opens with (threads, graph level,
precision hints, …) and ``podium_runtime.py`` is the very code that opened the model while
it was measured. This file needs numpy and the runtime pinned in ``requirements.txt``, and
nothing of Podium. Written by ``podium export`` (a copy of ``tuner/trial/bundle_predict.py``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
INFERENCE_FILE = "inference.json"
RUNTIME_FILE = "podium_runtime.py"


class Model:
    """The bundle's session. ``run`` takes any number of rows: an artifact compiled for a
    static batch gets them in chunks of that batch (the last one zero-padded), the way
    Podium scored its quality."""

    def __init__(self, folder: Path, spec: dict[str, Any], session: Any) -> None:
        self.spec = spec
        self.session = session
        self.batch = int(spec["batch"])
        self.static = bool(spec["static_shapes"])
        self.inputs = {i["name"]: i for i in spec["inputs"]}
        self.output_names = [o["name"] for o in spec["outputs"]]
        self._output_axes = [o["batch_axis"] for o in spec["outputs"]]
        self.constants: dict[str, np.ndarray] = {}
        if spec.get("constants"):
            with np.load(folder / spec["constants"], allow_pickle=False) as npz:
                self.constants = {k: npz[k] for k in npz.files}

    def run(self, inputs: dict[str, Any]) -> list[np.ndarray]:
        feed = dict(self.constants)
        for name, given in inputs.items():
            if name not in self.inputs:
                raise ValueError(f"{name!r} is not an input of this model "
                                 f"({', '.join(self.inputs)})")
            value = np.asarray(given, dtype=self.inputs[name]["dtype"])
            # (ascontiguousarray would make a scalar input 1-D)
            feed[name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        missing = [name for name in self.inputs if name not in feed]
        if missing:
            raise ValueError(f"missing input(s): {', '.join(missing)}")
        batched = {name: spec["batch_axis"] for name, spec in self.inputs.items()
                   if spec["batch_axis"] is not None and name not in self.constants}
        if not batched:
            return self.session.run(feed)
        name, axis = next(iter(batched.items()))
        rows = feed[name].shape[axis]
        if not self.static or rows == self.batch:
            return self.session.run(feed)
        chunks = []
        for start in range(0, rows, self.batch):
            part = dict(feed)
            for key, key_axis in batched.items():
                piece = np.take(feed[key], range(start, min(start + self.batch, rows)),
                                axis=key_axis)
                short = self.batch - piece.shape[key_axis]
                if short:
                    pad = [(0, 0)] * piece.ndim
                    pad[key_axis] = (0, short)
                    piece = np.pad(piece, pad)
                part[key] = np.ascontiguousarray(piece)
            got = min(self.batch, rows - start)
            chunks.append([out if axis_out is None
                           else np.take(out, range(got), axis=axis_out)
                           for out, axis_out in zip(self.session.run(part), self._output_axes,
                                                    strict=True)])
        return [chunks[0][i] if axis_out is None
                else np.concatenate([chunk[i] for chunk in chunks], axis=axis_out)
                for i, axis_out in enumerate(self._output_axes)]

    def close(self) -> None:
        self.session.close()


def load(folder: str | Path = HERE, *, threads: int | None = None) -> Model:
    """Open the bundle in ``folder`` with its recorded options (``threads`` overrides the
    recorded thread count, which is what was timed)."""
    folder = Path(folder)
    spec = json.loads((folder / INFERENCE_FILE).read_text())
    module_spec = importlib.util.spec_from_file_location("podium_runtime", folder / RUNTIME_FILE)
    runtime_module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(runtime_module)
    runtime = json.loads(json.dumps(spec["runtime"]))
    if threads is not None:
        runtime = _with_threads(runtime, threads)
    return Model(folder, spec, runtime_module.open_session(folder, runtime))


def _with_threads(runtime: dict[str, Any], threads: int) -> dict[str, Any]:
    """``runtime`` with every thread count it names set to ``threads``."""
    for key in ("threads", "intra_op_num_threads"):
        if key in runtime:
            runtime[key] = threads
    if runtime.get("execution_mode") == "ORT_PARALLEL":
        runtime["inter_op_num_threads"] = threads
    if "INFERENCE_NUM_THREADS" in runtime.get("properties", {}):
        runtime["properties"]["INFERENCE_NUM_THREADS"] = threads
    return runtime


_MODEL: Model | None = None


def predict(inputs: dict[str, Any]) -> list[np.ndarray]:
    """``load()`` once, then ``run(inputs)``."""
    global _MODEL
    if _MODEL is None:
        _MODEL = load()
    return _MODEL.run(inputs)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python predict.py INPUTS.npz OUT.npz", file=sys.stderr)
        return 2
    with np.load(argv[0], allow_pickle=False) as npz:
        inputs = {k: npz[k] for k in npz.files}
    model = load()
    try:
        outputs = model.run(inputs)
    except ValueError as exc:
        print(f"predict.py: {exc}", file=sys.stderr)
        return 2
    np.savez(argv[1], **dict(zip(model.output_names, outputs, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
