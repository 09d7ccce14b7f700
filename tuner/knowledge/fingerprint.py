"""Fingerprints: what a model is and what it ran on, as stable hashes with a similarity.

Past results only help a new search when we can tell how alike two searches are. A
workload is summarised from its ONNX graph (so user models get one too): operator-type
histogram, parameter count, estimated FLOPs, inputs and opset. Two graphs with the same
summary get the same hash; :func:`similarity` says how close two different ones are.
Hardware reuses :func:`tuner.hardware.fingerprint`; its hash is the knowledge store's
second key, so a record measured on one machine is never mistaken for another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# Gemm is MatMul + Add fused by the exporter; for likeness they are the same kind of layer.
_SAME_KIND = {"Gemm": "MatMul"}
# How much shared ISA flags, core count and profile name make two different machines alike.
_ISA_WEIGHT, _CORES_WEIGHT, _PROFILE_WEIGHT = 0.5, 0.25, 0.25


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WorkloadFingerprint:
    """A summary of one ONNX graph; ``inputs`` are ``[name, dtype, dims]`` triples.

    ``fragility`` is not the graph's: it is the share of the workload's fp32 output rows a
    small numeric change can flip (:func:`workloads.quality.fragile_share`), a property of
    the weights and data that the graph cannot show. It is left out of the hash, so a
    record made before it existed still keys the same graph.
    """

    ops: dict[str, int]
    parameters: int
    flops: int
    inputs: list[list[Any]] = field(default_factory=list)
    opset: int = 0
    fragility: float | None = None

    @property
    def hash(self) -> str:
        graph = asdict(self)
        del graph["fragility"]
        return _digest(graph)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkloadFingerprint:
        return cls(ops=dict(data["ops"]), parameters=int(data["parameters"]),
                   flops=int(data["flops"]), inputs=[list(i) for i in data.get("inputs", [])],
                   opset=int(data.get("opset", 0)), fragility=data.get("fragility"))


def model_fingerprint(path: Path | str) -> WorkloadFingerprint:
    """Fingerprint an ONNX file: op histogram, parameters, FLOPs (batch 1), inputs, opset."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    # A graph shape inference cannot follow still has declared shapes to count FLOPs from.
    with contextlib.suppress(Exception):
        model = shape_inference.infer_shapes(model)
    graph = model.graph
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    initializers = {t.name: list(t.dims) for t in graph.initializer}
    parameters = sum(math.prod(dims) for dims in initializers.values())
    shapes = dict(initializers)
    for value in [*graph.input, *graph.value_info, *graph.output]:
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else 1
                              for d in value.type.tensor_type.shape.dim]
    flops = sum(_node_flops(node, shapes) for node in graph.node)
    inputs = [[v.name, onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type),
               [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]]
              for v in graph.input if v.name not in initializers]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    return WorkloadFingerprint(ops=dict(sorted(ops.items())), parameters=parameters,
                               flops=flops, inputs=inputs, opset=opset)


def _node_flops(node: Any, shapes: dict[str, list[int]]) -> int:
    """Multiply-adds × 2 of the heavy ops; symbolic dims (the batch) count as 1."""
    if node.op_type in ("MatMul", "Gemm") and len(node.input) >= 2:
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        if not a or not b:
            return 0
        transposed = any(attr.name == "transA" and attr.i for attr in node.attribute)
        k = a[-2] if transposed and len(a) >= 2 else a[-1]
        out = shapes.get(node.output[0])
        return 2 * k * math.prod(out) if out else 2 * math.prod(a) * b[-1]
    if node.op_type == "Conv" and len(node.input) >= 2:
        weight, out = shapes.get(node.input[1]), shapes.get(node.output[0])
        if not weight or not out:
            return 0
        return 2 * math.prod(out) * math.prod(weight[1:])
    return 0


def workload_fingerprint(workload: Any) -> WorkloadFingerprint:
    """A workload's fingerprint is its reference variant's graph (the model users bring),
    with the fragility of its fp32 outputs on the workload's evaluation data."""
    from workloads.quality import fragile_share

    graph = model_fingerprint(workload.model_path(workload.reference))
    return replace(graph, fragility=fragile_share(workload.metric, workload.reference_outputs))


def _size_term(a: WorkloadFingerprint, b: WorkloadFingerprint) -> float:
    """1 for equal sizes, halved for every factor of 100 (parameters and FLOPs averaged).

    Gentle on purpose: a wider model of the same architecture ranks configurations much
    like the narrow one, while a different architecture does not.
    """
    gap = (abs(math.log10(a.parameters + 1) - math.log10(b.parameters + 1))
           + abs(math.log10(a.flops + 1) - math.log10(b.flops + 1))) / 2
    return 0.5 ** (gap / 2)


def _kinds(ops: dict[str, int]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for op, count in ops.items():
        kinds[_SAME_KIND.get(op, op)] = kinds.get(_SAME_KIND.get(op, op), 0) + count
    return kinds


def similarity(a: WorkloadFingerprint, b: WorkloadFingerprint) -> float:
    """In [0, 1]: cosine of log-scaled op histograms × a parameter and FLOP size term.

    Input dtypes must agree (an int64 token model and a float image model do not share
    good configurations); 1.0 means the same graph summary.
    """
    if a.hash == b.hash:
        return 1.0
    if sorted(i[1] for i in a.inputs) != sorted(i[1] for i in b.inputs):
        return 0.0
    ops_a, ops_b = _kinds(a.ops), _kinds(b.ops)
    keys = sorted(set(ops_a) | set(ops_b))
    va = [math.log1p(ops_a.get(k, 0)) for k in keys]
    vb = [math.log1p(ops_b.get(k, 0)) for k in keys]
    norm = math.sqrt(sum(x * x for x in va)) * math.sqrt(sum(x * x for x in vb))
    cosine = sum(x * y for x, y in zip(va, vb, strict=True)) / norm if norm else 0.0
    return cosine * _size_term(a, b)


def hardware_hash(fingerprint: dict[str, Any]) -> str:
    """Stable key of :func:`tuner.hardware.fingerprint`'s dict (profile, ISA, caches, …)."""
    return _digest(fingerprint)


def hardware_similarity(a: dict[str, Any], b: dict[str, Any]) -> float:
    """In [0, 1]: 1 for the same fingerprint, else shared ISA flags, cores and profile."""
    if hardware_hash(a) == hardware_hash(b):
        return 1.0
    isa_a, isa_b = set(a.get("isa", [])), set(b.get("isa", []))
    isa = len(isa_a & isa_b) / len(isa_a | isa_b) if isa_a | isa_b else 0.0
    cores = min(a.get("cores", 1), b.get("cores", 1)) / max(a.get("cores", 1),
                                                            b.get("cores", 1), 1)
    profile = float(a.get("profile") == b.get("profile"))
    # Below 1.0 even when every term agrees: another host is never the same machine.
    return 0.99 * (_ISA_WEIGHT * isa + _CORES_WEIGHT * cores + _PROFILE_WEIGHT * profile)
