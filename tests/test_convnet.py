"""The convnet workload: graph shape, trained accuracy, data split, determinism.

Every test is slow: one build trains all variants (about a minute on two cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.onnx_models import check_exported_variant
from workloads import convnet
from workloads.base import BuildOutput, Metric
from workloads.convnet import RECIPE

pytestmark = pytest.mark.slow

STANDARD_OPS = {"Conv", "Relu", "MaxPool", "AveragePool", "Flatten", "Gemm"}


def _build(out_dir: Path) -> BuildOutput:
    return RECIPE.build(out_dir)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, BuildOutput]]:
    """Two independent builds, in two processes at once (training runs on one thread):
    the determinism test compares them, the others read the first."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    folders = [tmp_path_factory.mktemp("convnet"), tmp_path_factory.mktemp("convnet-again")]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(zip(folders, pool.map(_build, folders), strict=True))


@pytest.fixture(scope="module")
def built(builds: list[tuple[Path, BuildOutput]]) -> tuple[Path, BuildOutput]:
    return builds[0]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_recipe() -> None:
    assert RECIPE.name == "convnet"
    assert RECIPE.metric is Metric.ACCURACY


def test_variants_are_valid_convnets(built: tuple[Path, BuildOutput]) -> None:
    out_dir, out = built
    names = [v.name for v in out.variants]
    assert len(names) >= 2 and out.reference in names
    for variant in out.variants:
        model = check_exported_variant(out_dir / variant.filename, input_name="image",
                                       input_type=onnx.TensorProto.FLOAT,
                                       input_dims=["N", 3, 64, 64], output_dims=["N", 10])
        ops = [n.op_type for n in model.graph.node]
        assert set(ops) <= STANDARD_OPS and ops.count("Conv") >= 5
        assert variant.parameters == sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    reference = next(v for v in out.variants if v.name == out.reference)
    assert reference.parameters >= 1_000_000
    assert reference.parameters == max(v.parameters for v in out.variants)


def test_ort_runs_with_dynamic_batch(built: tuple[Path, BuildOutput]) -> None:
    """Batch 1 and batch 3 both run, and an image's logits do not depend on its batch."""
    out_dir, out = built
    images = out.eval_inputs["image"][:3]
    for variant in out.variants:
        session = _session(out_dir / variant.filename)
        (one,) = session.run(None, {"image": images[:1]})
        (three,) = session.run(None, {"image": images})
        assert one.shape == (1, 10) and one.dtype == np.float32
        assert three.shape == (3, 10) and np.isfinite(three).all()
        np.testing.assert_allclose(three[:1], one, rtol=1e-4, atol=1e-4)


def test_trained_variants_are_accurate(built: tuple[Path, BuildOutput]) -> None:
    """The weights are learned, not random: every variant classifies held-out digits."""
    out_dir, out = built
    images = out.eval_inputs["image"]
    for variant in out.variants:
        (logits,) = _session(out_dir / variant.filename).run(None, {"image": images})
        accuracy = (logits.argmax(1) == out.eval_labels).mean()
        assert accuracy >= (0.9 if variant.name == out.reference else 0.85), variant.name


def test_data(built: tuple[Path, BuildOutput]) -> None:
    _, out = built
    evals, calib = out.eval_inputs["image"], out.calib_inputs["image"]
    assert evals.shape == (convnet.N_EVAL, 3, 64, 64)
    assert calib.shape == (convnet.N_CALIB, 3, 64, 64)
    assert evals.dtype == calib.dtype == np.float32
    assert min(evals.min(), calib.min()) >= 0 and max(evals.max(), calib.max()) <= 1
    assert out.eval_labels is not None and out.eval_labels.dtype == np.int64
    assert set(np.unique(out.eval_labels)) == set(range(10))


def test_split_is_disjoint() -> None:
    """Eval and calibration digits are never trained on; load_digits holds no duplicate
    images, so a glyph found in two parts would be a shared sample."""
    parts = convnet._split(convnet._rng("split"))
    assert len(parts["eval"][1]) == convnet.N_EVAL and len(parts["calib"][1]) == convnet.N_CALIB
    assert sum(len(labels) for _, labels in parts.values()) == 1797
    seen = [{g.tobytes() for g in glyphs} for glyphs, _ in parts.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_build_is_deterministic(builds: list[tuple[Path, BuildOutput]]) -> None:
    (out_dir, out), (again_dir, again) = builds
    assert again.variants == out.variants
    for variant in out.variants:
        assert (again_dir / variant.filename).read_bytes() == \
            (out_dir / variant.filename).read_bytes()
    assert np.array_equal(again.eval_inputs["image"], out.eval_inputs["image"])
    assert np.array_equal(again.calib_inputs["image"], out.calib_inputs["image"])
    assert np.array_equal(again.eval_labels, out.eval_labels)
