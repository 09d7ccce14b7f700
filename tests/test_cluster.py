"""A two-node Ray cluster whose nodes advertise different hardware targets."""

from __future__ import annotations

import pytest

from tests.conftest import FAST_PROTOCOL
from tuner.search.optimize import optimize


@pytest.fixture
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"hw:local": 1}, "include_dashboard": False})
    other = cluster.add_node(num_cpus=1, resources={"hw:aws-c7i.large": 1})
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    nodes = {"local": cluster.head_node.node_id, "aws-c7i.large": other.node_id}
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_each_trial_runs_on_a_node_advertising_its_target(two_nodes, tmp_path):
    cluster, nodes = two_nodes
    result = optimize("digits", ["latency_p90_ms"], ["quality_ratio >= 0.9"],
                      hardware=["local", "aws-c7i.large"], trials=6,
                      space={"backend": "ort", "batch": 1, "threads": 1, "variant": "linear",
                             "ort_graph_optimization": "all", "int8_keep_fp32": 0,
                             "int8_op_types": "all",
                             "precision": ["fp32", "int8-dynamic"], "per_channel": False},
                      storage=f"sqlite:///{tmp_path / 's.db'}", study="cluster",
                      sampler="grid", ray_address=cluster.address, protocol=FAST_PROTOCOL,
                      warm_start=False)  # every grid point measured here, on its node
    assert result.baseline.hardware.node.endswith(nodes["local"][:12])
    seen = set()
    for trial in result.results:
        assert trial.ok, trial.error
        profile = trial.hardware.profile
        assert trial.hardware.node.endswith(nodes[profile][:12]), (profile, trial.hardware.node)
        seen.add(profile)
    assert seen == {"local", "aws-c7i.large"}
    assert len(result.results) == 4  # the grid: 2 targets × 2 precisions, each measured once
    assert result.trials["hardware"].nunique() == 2
