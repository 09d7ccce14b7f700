"""The encoder workload: graph shape, ORT runs with a dynamic batch, data, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.onnx_models import check_exported_variant
from workloads import transformer
from workloads.base import BuildOutput, Metric
from workloads.transformer import RECIPE


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildOutput]:
    out_dir = tmp_path_factory.mktemp("encoder")
    return out_dir, RECIPE.build(out_dir)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_recipe() -> None:
    assert RECIPE.name == "encoder"
    assert RECIPE.metric is Metric.AGREEMENT


def test_variants_are_valid_encoders(built: tuple[Path, BuildOutput]) -> None:
    out_dir, out = built
    names = [v.name for v in out.variants]
    assert len(names) >= 2 and out.reference in names
    for variant in out.variants:
        model = check_exported_variant(out_dir / variant.filename, input_name="input_ids",
                                       input_type=onnx.TensorProto.INT64,
                                       input_dims=["N", 128],
                                       output_dims=["N", 128, transformer.CLASSES])
        ops = [n.op_type for n in model.graph.node]
        assert ops.count("Softmax") >= 2 and ops.count("Erf") == ops.count("Softmax")
        inits = {i.name: i for i in model.graph.initializer}
        assert inits["tok_emb"].dims[1] >= 256
        assert variant.parameters == sum(int(np.prod(i.dims)) for i in inits.values()
                                         if i.data_type == onnx.TensorProto.FLOAT and i.dims)


def test_ort_runs_with_dynamic_batch(built: tuple[Path, BuildOutput]) -> None:
    """Batch 1 and batch 3 both run, and a row's logits do not depend on its batch."""
    out_dir, out = built
    ids = out.eval_inputs["input_ids"][:3]
    for variant in out.variants:
        session = _session(out_dir / variant.filename)
        (one,) = session.run(None, {"input_ids": ids[:1]})
        (three,) = session.run(None, {"input_ids": ids})
        assert one.shape == (1, 128, transformer.CLASSES) and one.dtype == np.float32
        assert three.shape == (3, 128, transformer.CLASSES) and np.isfinite(three).all()
        np.testing.assert_allclose(three[:1], one, atol=1e-4)


def test_reference_tags_the_synthetic_language(built: tuple[Path, BuildOutput]) -> None:
    """The fitted head follows the rule, so top-1 is decisive rather than a coin toss."""
    out_dir, out = built
    ids = out.eval_inputs["input_ids"]
    lexical = transformer._lexical_classes(np.random.default_rng(transformer.SEED))
    tags = transformer._tags(ids, lexical)
    for variant in out.variants:
        (logits,) = _session(out_dir / variant.filename).run(None, {"input_ids": ids})
        assert (logits.argmax(-1) == tags).mean() > 0.99


def test_data(built: tuple[Path, BuildOutput]) -> None:
    _, out = built
    evals, calib = out.eval_inputs["input_ids"], out.calib_inputs["input_ids"]
    assert evals.shape == (64, 128) and calib.shape == (32, 128)
    assert evals.dtype == calib.dtype == np.int64
    assert min(evals.min(), calib.min()) >= 0 and max(evals.max(), calib.max()) < transformer.VOCAB
    assert not {r.tobytes() for r in evals} & {r.tobytes() for r in calib}
    assert out.eval_labels is None


def test_build_is_deterministic(built: tuple[Path, BuildOutput], tmp_path: Path) -> None:
    out_dir, out = built
    again = RECIPE.build(tmp_path)
    assert again.variants == out.variants
    for variant in out.variants:
        assert (tmp_path / variant.filename).read_bytes() == \
            (out_dir / variant.filename).read_bytes()
    assert np.array_equal(again.eval_inputs["input_ids"], out.eval_inputs["input_ids"])
    assert np.array_equal(again.calib_inputs["input_ids"], out.calib_inputs["input_ids"])
