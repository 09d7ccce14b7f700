"""Which layers bf16 (or fp16) hurts most, ranked on any CPU by emulating the rounding.

Mixed bf16 keeps the most sensitive layers in f32 (``bf16_keep_top``, the OpenVINO
backend), the same idea as int8 mixed precision (:mod:`tuner.transforms.sensitivity`),
and the ranking comes from the same machinery. What differs is how the reduced precision
is produced: a CPU with AMX or AVX512-BF16 computes a convolution or a matrix product from
bf16 inputs with f32 accumulation, and the ranking must not need such a CPU (it is cached
per model and read wherever the model is searched). So the emulated model rounds every
float input of the compute nodes (weights and activations) to the half type and back,
``Cast(to=bfloat16) → Cast(to=float)``, and ONNX Runtime runs it in f32. That is what the
hardware does to those operands; the element-wise layers between them, which the CPU
plugin may also run in bf16, stay exact, so the emulated error is a lower bound and the
ranking's figures say ``emulated``.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from tuner.transforms import sensitivity
from tuner.transforms.sensitivity import Probe

# The layers that compute in the half type on a CPU that has it; candidates come from these.
COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
HALF_TYPES = ("bfloat16", "float16")


def emulate(model: Any, half: str, *, keep: Collection[str] = (),
            op_types: Collection[str] = COMPUTE_OPS) -> Any:
    """A copy of ``model`` whose compute nodes (but ``keep``) read their float inputs
    rounded to ``half`` (``bfloat16`` or ``float16``)."""
    import onnx
    from onnx import TensorProto, helper

    to = {"bfloat16": TensorProto.BFLOAT16, "float16": TensorProto.FLOAT16}[half]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    floats = _float_values(out)
    nodes, rounded = [], {}
    for node in out.graph.node:
        if node.op_type in op_types and node.name not in keep:
            for index, name in enumerate(node.input):
                if name not in floats:
                    continue
                if name not in rounded:
                    rounded[name] = f"{name}__{half}_rounded"
                    nodes += [helper.make_node("Cast", [name], [f"{name}__{half}"], to=to),
                              helper.make_node("Cast", [f"{name}__{half}"], [rounded[name]],
                                               to=TensorProto.FLOAT)]
                node.input[index] = rounded[name]
        nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _float_values(model: Any) -> set[str]:
    """Names of the float32 tensors of ``model`` (inputs, weights, inferred values)."""
    import onnx
    from onnx import TensorProto

    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # shape inference refuses some valid models; weights and inputs remain
        inferred = model.graph
    values = [*inferred.input, *inferred.value_info, *inferred.output]
    names = {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    return names | {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}


def ranking(model_path: Path, probe: Probe, *, half: str, model_sha256: str) -> dict[str, Any]:
    """The cached ranking of ``model_path``'s compute nodes by emulated ``half`` damage.

    Returns ``{"key", "ranking", "error_all_half", "error_kept_fp32", "emulated"}``, as
    :func:`tuner.transforms.sensitivity.ranking` does for int8.
    """
    import onnx

    if half not in HALF_TYPES:
        raise ValueError(f"no emulation of {half!r} (known: {', '.join(HALF_TYPES)})")
    model = onnx.load(str(model_path))

    def write(out: Path, kept: list[str]) -> None:
        onnx.save(emulate(model, half, keep=kept), str(out))

    found = dict(sensitivity.ranking(model_path, write, probe, model_sha256=model_sha256,
                                     op_types=COMPUTE_OPS, settings={"emulated": half}))
    found["error_all_half"] = found.pop("error_all_int8")
    return found | {"emulated": f"{half} rounding of compute-node inputs, on ONNX Runtime"}
