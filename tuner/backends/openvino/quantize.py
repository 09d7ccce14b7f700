"""int8 for the OpenVINO backend through NNCF: a QDQ ONNX model OpenVINO runs in int8.

NNCF quantizes the ONNX model, not OpenVINO's IR of it, so ``ignored_nodes`` are the ONNX
node names Podium's sensitivity ranking produces, and the QDQ result could run on ONNX
Runtime as well. OpenVINO's reader turns each QuantizeLinear/DequantizeLinear pair into a
FakeQuantize, and the CPU plugin runs the convolutions and matrix products between them in
u8/i8 (with any execution mode, ACCURACY included).

Calibration items are model inputs, one call each (``nncf.Dataset`` of input dicts): one
canonical row per item where the model's declared shapes take a single row, else ``batch``
rows, the size of the call ``example`` shows (a model whose batch is fixed at export).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.backends.openvino.options import option_value
from tuner.errors import TrialFailed

if TYPE_CHECKING:
    import numpy as np
    import onnx

Feed = Callable[[dict[str, "np.ndarray"]], dict[str, "np.ndarray"]]
Outputs = list[list["np.ndarray"]]


@dataclass(frozen=True)
class Validation:
    """What accuracy control judges a quantized model on: data calibration did not see.

    ``feeds`` are model inputs, one call each (the workload layout's ``feed`` of evaluation
    rows). ``score(indices, outputs)`` gives the quality of each call, higher is better
    (accuracy of its rows against labels, or agreement with the f32 reference): NNCF ranks
    layers by how much each call loses, and the model's quality is the mean over calls.
    """

    feeds: Sequence[dict[str, np.ndarray]]
    score: Callable[[Sequence[int], Outputs], list[float]]


def _nncf() -> Any:
    # nncf sends usage telemetry unless NNCF_CI (or NNCF_DEV) is set when it is first
    # imported; a build worker does not phone home.
    os.environ.setdefault("NNCF_CI", "1")
    import nncf

    nncf.set_log_level(logging.ERROR)
    return nncf


def calibration_items(model: onnx.ModelProto, calibration: Mapping[str, np.ndarray], *,
                      example: Mapping[str, np.ndarray] | None, batch: int,
                      feed: Feed | None = None) -> list[dict[str, np.ndarray]]:
    """The calibration split as model inputs, one call per item.

    ``feed`` turns canonical rows (batch on axis 0) into model inputs; without it every
    input takes its batch on axis 0 and the inputs ``example`` has beyond the calibration
    rows (constants) are fed whole.
    """
    import numpy as np

    if feed is None:
        constants = {k: v for k, v in (example or {}).items() if k not in calibration}

        def feed(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return rows | constants

    total = len(next(iter(calibration.values())))

    def take(start: int, size: int) -> dict[str, np.ndarray]:
        index = np.arange(start, start + size) % total
        return {k: np.ascontiguousarray(v[index]) for k, v in calibration.items()}

    declared = _declared_shapes(model)
    size = 1 if _misfit(feed(take(0, 1)), declared) is None else batch
    items = [feed(take(start, size)) for start in range(0, total, size)]
    problem = _misfit(items[0], declared)
    if problem:
        raise TrialFailed(f"calibration rows do not fit the model: {problem}; the workload's "
                          "layout must say where each input carries the batch", stage="build")
    return items


def _declared_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    weights = {init.name for init in model.graph.initializer}
    return {value.name: [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                         for d in value.type.tensor_type.shape.dim]
            for value in model.graph.input if value.name not in weights}


def _misfit(item: Mapping[str, np.ndarray], declared: Mapping[str, list[int | None]]) -> str | None:
    for name, dims in declared.items():
        if name not in item:
            return f"no data for input {name!r}"
        shape = item[name].shape
        if len(shape) != len(dims) or any(d is not None and d != s for d, s in zip(dims, shape,
                                                                                   strict=True)):
            return f"input {name!r} is declared {dims}, the rows give {list(shape)}"
    return None


def compile_f32(model: onnx.ModelProto | Path) -> Any:
    """An infer request of ``model`` compiled by OpenVINO in f32 on this process's cores."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    compiled = core.compile_model(core.read_model(source), "CPU", {
        hints.inference_precision: ov.Type.f32,
        hints.execution_mode: hints.ExecutionMode.ACCURACY,
        props.inference_num_threads: len(os.sched_getaffinity(0))})
    return compiled.create_infer_request()


def _outputs(request: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [array.copy() for array in request.infer(feed).to_tuple()]


def agreement_with(reference: Outputs, output: int = 0,
                   ) -> Callable[[Sequence[int], Outputs], list[float]]:
    """A score: per call, how often ``output``'s argmax over its last axis matches the
    ``reference`` call's (a class per row, or per row and step for [N, T, C])."""
    import numpy as np

    expected = [np.argmax(call[output], axis=-1) for call in reference]

    def score(indices: Sequence[int], outputs: Outputs) -> list[float]:
        return [float(np.mean(np.argmax(call[output], axis=-1) == expected[i]))
                for i, call in zip(indices, outputs, strict=True)]

    return score


def closeness_to(reference: Outputs, output: int = 0,
                 ) -> Callable[[Sequence[int], Outputs], list[float]]:
    """A score: per call, 1 - the relative error of ``output`` against the ``reference``
    call's (for outputs that are not class scores: features, states, regressions)."""
    import numpy as np

    def score(indices: Sequence[int], outputs: Outputs) -> list[float]:
        values = []
        for i, call in zip(indices, outputs, strict=True):
            expected = reference[i][output].astype(np.float64)
            error = np.linalg.norm(call[output] - expected) / max(np.linalg.norm(expected),
                                                                   1e-30)
            values.append(float(max(0.0, 1.0 - error)) if np.isfinite(error) else 0.0)
        return values

    return score


def held_out_validation(model_path: Path, held_out: Any, *,
                        example: Mapping[str, np.ndarray] | None, batch: int,
                        feed: Feed | None = None) -> Validation:
    """Accuracy control's data: ``held_out`` (a sensitivity ``Probe``: rows calibration
    never saw, its layout, the scored output, the workload's metric) as calls, judged
    against the f32 model's own outputs on them: top-1 agreement where the workload scores
    classes (accuracy, agreement), closeness where it scores relative error. Without a
    metric, class-shaped outputs (``[..., classes]`` floats) are taken for classes."""
    import numpy as np
    import onnx

    layout = held_out.layout
    feeds = calibration_items(onnx.load(str(model_path), load_external_data=False),
                              held_out.inputs, example=example, batch=batch,
                              feed=layout.feed if layout is not None else feed)
    request = compile_f32(model_path)
    reference = [_outputs(request, call) for call in feeds]
    output = held_out.output_index
    first = reference[0][output]
    if held_out.metric is not None:
        classes = held_out.metric in ("accuracy", "agreement")
    else:
        classes = (first.ndim >= 2 and first.shape[-1] > 1
                   and np.issubdtype(first.dtype, np.floating))
    return Validation(feeds, (agreement_with if classes else closeness_to)(reference, output))


class _Judge:
    """NNCF's ``validation_fn``: the mean and per-call quality of a candidate model.

    Items are ``(index, feed)`` pairs so that ``score`` knows which calls it sees: NNCF
    also validates one item at a time, for each, which is why the last candidate's compiled
    model is kept (NNCF's own engine makes the same assumption: a model it passes again
    unchanged is the same object, same size, same nodes).
    """

    def __init__(self, validation: Validation) -> None:
        self._score = validation.score
        self._key: tuple[Any, ...] = ()
        self._request: Any = None

    def __call__(self, model: onnx.ModelProto, items: Any) -> tuple[float, list[float]]:
        key = (id(model), model.ByteSize(), len(model.graph.node))
        if key != self._key:
            self._key, self._request = key, compile_f32(model)
        indices, outputs = [], []
        for index, feed in items:
            indices.append(index)
            outputs.append(_outputs(self._request, feed))
        values = self._score(indices, outputs)
        return sum(values) / len(values), values


def quantize(model_path: Path, config: Any, *, calibration: Mapping[str, np.ndarray],
             example: Mapping[str, np.ndarray] | None, feed: Feed | None = None,
             validation: Validation | None = None) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """QDQ int8 of ``model_path`` under ``config``'s nncf options, and what was done.

    Without ``validation``, accuracy control judges agreement with f32 on the calibration
    items themselves: a stand-in until the engine passes held-out rows.
    """
    import onnx

    nncf = _nncf()
    start = time.perf_counter()
    model = onnx.load(str(model_path))
    items = calibration_items(model, calibration, example=example, feed=feed,
                              batch=int(getattr(config, "batch", 1) or 1))
    ignored = list(option_value(config, "ignored_nodes"))
    preset = option_value(config, "nncf_preset")
    model_type = option_value(config, "nncf_model_type")
    settings = {
        "preset": nncf.QuantizationPreset(preset),
        "target_device": nncf.TargetDevice.CPU,
        "subset_size": len(items),
        "fast_bias_correction": bool(option_value(config, "nncf_fast_bias_correction")),
        "model_type": nncf.ModelType.TRANSFORMER if model_type == "transformer" else None,
        "ignored_scope": nncf.IgnoredScope(names=ignored) if ignored else None,
    }
    details: dict[str, Any] = {
        "preset": preset, "model_type": model_type, "target_device": "CPU",
        "subset_size": len(items), "rows_per_item": len(next(iter(items[0].values()))),
        "fast_bias_correction": settings["fast_bias_correction"], "ignored_nodes": ignored}
    accuracy_control = bool(option_value(config, "nncf_accuracy_control"))
    try:
        # NNCF draws progress bars on stdout, which a worker shows no one.
        with contextlib.redirect_stdout(io.StringIO()):
            if accuracy_control:
                max_drop = float(option_value(config, "max_drop"))
                details |= {"api": "nncf.quantize_with_accuracy_control", "max_drop": max_drop,
                            "drop_type": "relative"}
                if validation is None:
                    reference = compile_f32(model_path)
                    validation = Validation(items, agreement_with([_outputs(reference, feed)
                                                                   for feed in items]))
                    details["validation_data"] = "calibration rows (no held-out rows given)"
                else:
                    details["validation_data"] = f"{len(validation.feeds)} held-out calls"
                quantized = nncf.quantize_with_accuracy_control(
                    model, nncf.Dataset(items), nncf.Dataset(list(enumerate(validation.feeds))),
                    _Judge(validation), max_drop=max_drop, drop_type=nncf.DropType.RELATIVE,
                    **settings)
            else:
                details["api"] = "nncf.quantize"
                quantized = nncf.quantize(model, nncf.Dataset(items), **settings)
    except nncf.ValidationError as exc:
        raise TrialFailed(f"NNCF refused the int8 settings: {exc}", stage="build") from exc
    details["quantized_tensors"] = sum(node.op_type == "QuantizeLinear"
                                       for node in quantized.graph.node)
    details["quantize_s"] = round(time.perf_counter() - start, 3)
    return quantized, details
