"""Graph clean-up before precision transforms: onnxscript's optimizer, as a searchable option.

Exporter graphs often carry constant sub-graphs, identity chains and shape arithmetic
that neither the quantizer nor ORT's own optimizer removes; ``onnxscript.optimizer``
folds and rewrites them at the ONNX level. Whether that helps is measured, not assumed,
so it is a configuration key (``graph_cleanup``). A clean-up that raises, or writes a
model that fails ``onnx.checker`` or an ORT session, fails the trial at build time with
its reason; it never stops the study.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from tuner.errors import TrialFailed, one_line
from tuner.trial.config import Configuration


class GraphCleanup(StrEnum):
    """ONNX-level clean-up before any precision change: none, or onnxscript's optimizer
    (constant folding, dead-code removal, pattern rewrites)."""

    NONE = "none"
    ONNXSCRIPT = "onnxscript"


def apply_cleanup(model_path: Path, config: Configuration,
                  out_path: Path) -> tuple[Path, dict[str, Any]]:
    """Return the model to transform next (``model_path`` itself when no clean-up is asked
    for) and the details a reproducer needs."""
    from tuner.transforms.precision import validate

    cleanup = config.normalized().graph_cleanup
    if cleanup in (None, GraphCleanup.NONE):
        return model_path, {}
    try:
        before, after = _onnxscript(model_path, out_path)
    except Exception as exc:
        reason = one_line(exc)[:200]
        root = _root_cause(exc)
        if root is not exc:
            reason += f"; caused by {type(root).__name__}: {one_line(root)[:200]}"
        raise TrialFailed(f"graph clean-up ({cleanup}) failed: {reason}", stage="build") from None
    validate(out_path, what=f"graph clean-up ({cleanup})")
    return out_path, {"graph_cleanup": {"method": cleanup.value, "nodes_before": before,
                                        "nodes_after": after}}


def _root_cause(exc: BaseException) -> BaseException:
    """onnx-ir wraps what it cannot read (e.g. map types) in a SerdeError per graph level."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc


def _onnxscript(model_path: Path, out_path: Path) -> tuple[int, int]:
    import onnx
    import onnxscript.optimizer

    model = onnx.load(str(model_path))
    before = len(model.graph.node)
    cleaned = onnxscript.optimizer.optimize(model)
    onnx.save(cleaned, str(out_path))
    return before, len(cleaned.graph.node)
