"""Fingerprints, the knowledge store and warm start, over replayed tables (no measuring)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests import onnx_models
from tests.test_replay import SPACE, _table
from tuner.hardware import fingerprint, load_profile
from tuner.knowledge.fingerprint import (
    WorkloadFingerprint,
    hardware_hash,
    model_fingerprint,
    similarity,
    workload_fingerprint,
)
from tuner.knowledge.store import KnowledgeStore
from tuner.knowledge.transfer import Transfer, next_transfer, ranked_transfers, transfer
from tuner.search.optimize import optimize
from tuner.search.replay import TableExecutor
from tuner.search.space import default_space
from tuner.search.study import MEMORY, Suggester
from tuner.trial.config import Configuration, artifact_digest, speed_digest
from tuner.trial.constraints import parse_constraints
from tuner.trial.results import Stability

# Every test here reasons about the local host's fingerprint (and optimize() about its cores).
pytestmark = pytest.mark.host_sensitive
# An AMD and an Intel machine: which one is nearer depends on the host.
PROFILES = ("aws-c7a.large", "aws-c7i.large")


def _relabel(table, hardware_fp, **workload):
    """The same measurements as if taken on another machine or for another workload."""
    return {d: r.model_copy(update={
        "trial_id": f"{hardware_hash(hardware_fp)}-{r.trial_id}",
        "hardware": r.hardware.model_copy(update={"fingerprint": hardware_fp,
                                                  "profile": hardware_fp["profile"]}),
        "workload": r.workload.model_copy(update=workload)}) for d, r in table.items()}


def _with_baseline(table, digits):
    baseline = Configuration(variant=digits.reference, threads=2).normalized()
    table[baseline.digest()] = next(iter(table.values())).model_copy(
        update={"config_digest": baseline.digest(), "trial_id": "base"})
    return table


def _search(digits, table, store, *, seed=3, trials=8, warm=True, defaults=False):
    executor = TableExecutor(table, profiles={"local": 2})
    result = optimize(digits, ["latency_p90_ms"], ["quality_ratio >= 0.99"], trials=trials,
                      space=SPACE, seed=seed, storage=MEMORY, study="k", executor=executor,
                      knowledge=store, warm_start=warm, defaults=defaults)
    return result, executor.order[1:]


def test_fingerprints_are_stable_and_tell_models_and_machines_apart(digits, tmp_path):
    tiny = onnx_models.classifier(tmp_path / "tiny.onnx")
    prints = {v: model_fingerprint(digits.model_path(v)) for v in digits.variants}
    prints["tiny"] = model_fingerprint(tiny)
    assert model_fingerprint(tiny).hash == prints["tiny"].hash
    assert len({p.hash for p in prints.values()}) == len(prints)
    assert prints["mlp-64"].flops > 0 and prints["mlp-64"].parameters > 0
    assert prints["mlp-64"].opset == 17 and prints["mlp-64"].inputs[0][1] == "FLOAT"
    assert similarity(prints["mlp-64"], prints["mlp-64"]) == 1.0
    assert similarity(prints["mlp-64"], prints["mlp-2x256"]) > similarity(prints["mlp-64"],
                                                                          prints["linear"]) > 0
    local, c7i = fingerprint(load_profile("local")), fingerprint(load_profile("aws-c7i.large"))
    assert hardware_hash(local) == hardware_hash(fingerprint(load_profile("local")))
    assert hardware_hash(local) != hardware_hash(c7i)
    # The workload's fingerprint adds the fragility of its outputs, outside the graph's hash.
    whole = workload_fingerprint(digits)
    assert whole.fragility is not None and 0.0 <= whole.fragility <= 1.0
    assert whole.hash == model_fingerprint(digits.model_path(digits.reference)).hash
    assert WorkloadFingerprint.from_dict(whole.as_dict()) == whole


def test_transfer_maps_what_applies_and_drops_the_rest(digits):
    space = default_space(digits.variants, hardware=["local"], cores=2).restrict(SPACE)
    suggester = Suggester(space, grid=False)
    table = _table(digits)
    mine = next(r for r in table.values() if r.config["variant"] == "mlp-64"
                and r.config["precision"] == "int8-static")
    config, params = transfer(mine, workload=digits, hardware="local", suggester=suggester)
    assert config.variant == "mlp-64" and config.precision.value == "int8-static"
    assert params == space.params_for(config)
    other = mine.model_copy(update={"workload": mine.workload.model_copy(
        update={"name": "other", "sha256": "f" * 64, "variant": "mlp-64"}),
        "config": mine.config | {"hardware": "aws-c7i.large"}})
    config, _ = transfer(other, workload=digits, hardware="local", suggester=suggester)
    assert config.variant == digits.reference and config.hardware == "local"
    assert config.precision.value == "int8-static"
    for update in ({"threads": 4}, {"backend": "tvm", "precision": "fp32"}):
        outside = mine.model_copy(update={"config": mine.config | update})
        assert transfer(outside, workload=digits, hardware="local", suggester=suggester) is None


def test_importing_twice_adds_nothing(digits, tmp_path):
    store = KnowledgeStore(tmp_path / "a.db")
    results = list(_table(digits).values())
    assert store.record(results, workload_fingerprint(digits), "local study x") == len(results)
    assert store.record(results, workload_fingerprint(digits), "local study x") == 0
    assert store.export(tmp_path / "k.jsonl") == len(results)
    other = KnowledgeStore(tmp_path / "b.db")
    assert other.import_(tmp_path / "k.jsonl") == len(results)
    assert other.import_(tmp_path / "k.jsonl") == 0
    assert other.stats()["trials"] == len(results) and other.stats()["pairs"] == 1


def test_warm_start_from_other_hardware_is_enqueued_labelled_and_reproducible(digits, tmp_path):
    c7i = fingerprint(load_profile("aws-c7i.large"))
    known = _relabel(_table(digits), c7i)
    KnowledgeStore(tmp_path / "seed.db").record(known.values(), workload_fingerprint(digits),
                                                "local study past")
    KnowledgeStore(tmp_path / "seed.db").export(tmp_path / "k.jsonl")
    runs = []
    for index in range(2):
        store = KnowledgeStore(tmp_path / f"run{index}.db")
        store.import_(tmp_path / "k.jsonl")
        runs.append(_search(digits, _with_baseline(_table(digits), digits), store))
    (first, order), (_, again) = runs
    assert order == again
    table = _table(digits)
    best = min(r.metrics.latency_p90_ms for r in table.values()
               if r.metrics.quality_ratio >= 0.99)
    first_measured = table[order[0]].metrics  # a best known configuration goes first
    assert first_measured.latency_p90_ms == best and first_measured.quality_ratio >= 0.99
    assert first.knowledge and all("aws-c7i.large" in s for s in first.knowledge.values())
    frame = first.trials
    assert frame["knowledge_source"].notna().sum() == len(first.knowledge)
    assert store.stats()["sources"].get("local study k", 0) > 0


@pytest.mark.parametrize("near", PROFILES)
def test_transfers_rank_what_did_well_across_neighbours_above_one_neighbours_best(
        digits, tmp_path, local_host, near):
    """X is the best on aws-c7a.large but fails quality on aws-c7i.large; Y is close to the
    best on both. Whichever of the two is nearer to this host (its ISA: AMD or Intel), the
    pooled ranking puts Y first; X still ranks (it may win here)."""
    local_host(near)
    store = KnowledgeStore(tmp_path / "k.db")
    table = _table(digits)
    x, y = [d for d, r in table.items() if r.config["variant"] == digits.reference
            and r.config["batch"] == 1 and r.config["threads"] == 1][:2]
    for profile, latencies, quality in zip(PROFILES, ((1.0, 1.2), (1.0, 1.0)), (1.0, 0.5),
                                           strict=True):
        tweaked = {d: r.model_copy(update={"metrics": r.metrics.model_copy(
            update={"latency_p90_ms": 9.0})}) for d, r in table.items()}
        for digest, latency in zip((x, y), latencies, strict=True):
            metrics = {"latency_p90_ms": latency,
                       "quality_ratio": quality if digest == x else 1.0}
            tweaked[digest] = table[digest].model_copy(
                update={"metrics": table[digest].metrics.model_copy(update=metrics)})
        store.record(_relabel(tweaked, fingerprint(load_profile(profile))).values(),
                     workload_fingerprint(digits), f"study on {profile}")
    suggester = Suggester(default_space(digits.variants, hardware=["local"], cores=2)
                          .restrict(SPACE), grid=False)
    local = fingerprint(load_profile("local"))
    neighbours = store.nearest(workload_fingerprint(digits), local)
    far = next(profile for profile in PROFILES if profile != near)
    assert [n.hardware_profile for n in neighbours][:2] == [near, far]
    ranked = ranked_transfers(store, neighbours, "latency_p90_ms",
                              parse_constraints(["quality_ratio >= 0.99"]), workload=digits,
                              hardware="local", suggester=suggester)
    digests = [transfer(table[d], workload=digits, hardware="local",
                        suggester=suggester)[1] for d in (y, x)]
    assert [t.params for t in ranked[:2]] == digests
    assert near in ranked[0].label  # labelled with the nearest neighbour


@pytest.mark.parametrize(("own", "loss", "first"), [
    (0.0, 0.03, "x"),  # robust here: a few fragile rows flipped there cannot flip here
    (0.02, 0.03, "x"),  # a fifth of 3 % flipped there, so 0.4 % of rows here: within 1 %
    (0.15, 0.03, "y"),  # as fragile here: the loss transfers
    (0.30, 0.008, "y"),  # twice as fragile here: 0.8 % there is 1.6 % here
    (None, 0.03, "y"),  # fragility unknown here: the loss transfers
    (0.0, 0.30, "y")])  # more than the relative's fragile rows: its numbers broke
def test_a_relatives_quality_loss_transfers_as_the_rate_its_fragile_rows_flip(
        digits, tmp_path, own, loss, first):
    """X is the relative's fastest but loses ``loss`` of its quality there (whose outputs
    have 15 % fragile rows); Y is 10 % slower and keeps it."""
    table = _table(digits)
    x, y = [d for d, r in table.items() if r.config["variant"] == digits.reference
            and r.config["batch"] == 1 and r.config["threads"] == 1][:2]
    relative = {d: r.model_copy(update={"metrics": r.metrics.model_copy(update={
        "latency_p90_ms": {x: 1.0, y: 1.1}.get(d, 9.0),
        "quality_ratio": 1.0 - loss if d == x else 1.0})}) for d, r in table.items()}
    store = KnowledgeStore(tmp_path / "k.db")
    fragile = replace(workload_fingerprint(digits), fragility=0.15)
    store.record(_relabel(relative, fingerprint(load_profile("aws-c7i.large"))).values(),
                 fragile, "relative study")
    suggester = Suggester(default_space(digits.variants, hardware=["local"], cores=2)
                          .restrict(SPACE), grid=False)
    neighbours = store.nearest(workload_fingerprint(digits), fingerprint(load_profile("local")))
    assert neighbours[0].fragility == 0.15
    ranked = ranked_transfers(store, neighbours, "latency_p90_ms",
                              parse_constraints(["quality_ratio >= 0.99"]), workload=digits,
                              hardware="local", suggester=suggester, fragility=own)
    expected = transfer(table[{"x": x, "y": y}[first]], workload=digits, hardware="local",
                        suggester=suggester)[1]
    assert ranked[0].params == expected


def test_a_relatives_quality_miss_pushes_back_by_how_far_it_missed(digits, tmp_path):
    """On the relative, X is fastest but misses quality by 3 %, Z misses by 0.3 %, W keeps
    quality but is unstable there, Y is slowest and feasible. A near miss costs little
    (1.2 × e^0.12 ≈ 1.35), a clear one much (1.0 × e^1.2 ≈ 3.3); an unstable one costs
    the flat 1.5 (0.95 × 1.5 ≈ 1.43), its small quality miss included."""
    table = _table(digits)
    x, y, z, w = [d for d, r in table.items() if r.config["variant"] == digits.reference
                  and r.config["batch"] == 1][:4]
    setting = {x: (1.0, 0.99 * 0.97), y: (1.45, 1.0), z: (1.2, 0.99 * 0.997),
               w: (0.95, 0.99 * 0.999)}
    relative = {}
    for d, r in table.items():
        latency, quality = setting.get(d, (9.0, 1.0))
        update = {"latency_p90_ms": latency, "quality_ratio": quality}
        if d == w:
            update["stability"] = Stability.UNSTABLE
        relative[d] = r.model_copy(update={"metrics": r.metrics.model_copy(update=update)})
    store = KnowledgeStore(tmp_path / "k.db")
    store.record(_relabel(relative, fingerprint(load_profile("aws-c7i.large"))).values(),
                 workload_fingerprint(digits), "relative study")
    suggester = Suggester(default_space(digits.variants, hardware=["local"], cores=2)
                          .restrict(SPACE), grid=False)
    neighbours = store.nearest(workload_fingerprint(digits), fingerprint(load_profile("local")))
    ranked = ranked_transfers(store, neighbours, "latency_p90_ms",
                              parse_constraints(["quality_ratio >= 0.99"]), workload=digits,
                              hardware="local", suggester=suggester)
    expected = [transfer(table[d], workload=digits, hardware="local", suggester=suggester)[1]
                for d in (z, w, y, x)]
    assert [t.params for t in ranked[:4]] == expected


def _measured(template, config, quality):
    """``template``'s record, as if ``config`` had been measured with ``quality``."""
    config = config.normalized()
    return template.model_copy(update={
        "config": config.as_dict(), "config_digest": config.digest(),
        "metrics": template.metrics.model_copy(update={"quality_ratio": quality,
                                                       "stability": Stability.STABLE})})


@pytest.mark.parametrize(("quality", "expected"), [
    (0.97, None), (0.98, "fp32 1t"), (0.989, "int8 dynamic"), (None, "int8 static 1t")])
def test_the_next_transfer_follows_what_this_search_measured(digits, quality, expected):
    """int8 static failed quality here: its 1-thread twin computes the same numbers and is
    never picked; a miss by 1 % hands the next pick to fp32, which passed here, while a near
    miss (0.1 % short) keeps int8's other scheme; a miss by 2 % or more ends the plan.
    Without a quality constraint the plan keeps its order."""
    ref = digits.reference
    plans = {"int8 static 2t": (Configuration(variant=ref, precision="int8-static", threads=2),
                                1.0),
             "int8 static 1t": (Configuration(variant=ref, precision="int8-static", threads=1),
                                1.05),
             "int8 dynamic": (Configuration(variant=ref, precision="int8-dynamic", threads=2),
                              1.1),
             "fp32 1t": (Configuration(variant=ref, threads=1), 1.3)}
    plan = [Transfer(c.normalized(), {}, score, name) for name, (c, score) in plans.items()]
    template = next(iter(_table(digits).values()))
    known = [_measured(template, Configuration(variant=ref, threads=2), 1.0),
             _measured(template, plans["int8 static 2t"][0], quality or 0.97)]
    constraints = parse_constraints(["quality_ratio >= 0.99"] if quality else
                                    ["latency_p90_ms <= 100"])
    pick = next_transfer(plan, known, constraints, {r.config_digest for r in known})
    assert (pick and pick.label) == expected


def test_a_calibration_twin_of_a_configuration_that_passed_is_not_measured(digits):
    """Static int8 calibrated another way runs the same operators: once one passed here, its
    twins could only repeat its speed, so the plan goes to what it has not timed. After a
    quality miss the twin is worth measuring (its numbers differ)."""
    ref = digits.reference
    static = Configuration(variant=ref, precision="int8-static", calibration="minmax",
                           threads=2).normalized()
    twin = static.with_updates(calibration="entropy", calibration_rows=64)
    dynamic = Configuration(variant=ref, precision="int8-dynamic", threads=2).normalized()
    assert speed_digest(static) == speed_digest(twin)
    assert speed_digest(static) != speed_digest(static.with_updates(per_channel=True))
    assert speed_digest(static) != speed_digest(static.with_updates(threads=1))
    kept = static.with_updates(int8_keep_fp32=2)  # which nodes stay fp32 depends on calibration
    assert speed_digest(kept) != speed_digest(kept.with_updates(calibration="entropy"))

    plan = [Transfer(c, {}, score, name) for name, c, score in
            [("static", static, 1.0), ("twin", twin, 1.01), ("dynamic", dynamic, 1.1)]]
    template = next(iter(_table(digits).values()))
    constraints = parse_constraints(["quality_ratio >= 0.99"])
    for quality, expected in ((1.0, "dynamic"), (0.985, "twin")):
        known = [_measured(template, static, quality)]
        pick = next_transfer(plan, known, constraints, {r.config_digest for r in known})
        assert pick is not None and pick.label == expected


def _int8_breaks_here(digits, tmp_path, quality=0.98):
    """A store whose relative says int8 (fast, accurate there), and this machine's table,
    where every int8 configuration fails quality (by 1 % at 0.98: the plan goes on)."""
    relative = {d: r.model_copy(update={"metrics": r.metrics.model_copy(update={
        "latency_p90_ms": (1.0 if r.config["precision"].startswith("int8") else 1.3)
        + 0.01 * i, "quality_ratio": 1.0})}) for i, (d, r) in enumerate(_table(digits).items())}
    store = KnowledgeStore(tmp_path / "k.db")
    store.record(_relabel(relative, fingerprint(load_profile("aws-c7i.large")),
                          name="relative", sha256="f" * 64).values(),
                 workload_fingerprint(digits), "relative study")
    here = _with_baseline({d: r.model_copy(update={"metrics": r.metrics.model_copy(update={
        "quality_ratio": quality if r.config["precision"].startswith("int8") else 1.0})})
        for d, r in _table(digits).items()}, digits)
    return store, here


def _sources(result, order):
    return [result.knowledge.get(next(r.trial_id for r in result.results
                                      if r.config_digest == d)) for d in order]


def test_a_warm_search_leaves_int8_when_int8_breaks_accuracy_here(digits, tmp_path):
    """After the first int8 miss the plan goes to the precisions that passed, and the
    deferred defaults come after the transfers."""
    store, here = _int8_breaks_here(digits, tmp_path)
    result, order = _search(digits, here, store, trials=10, defaults=True)
    precisions = [here[d].config["precision"] for d in order]
    assert precisions[0].startswith("int8")  # the relative's best goes first
    assert not precisions[1].startswith("int8")  # … and once it misses, int8 waits
    sources = _sources(result, order)
    assert all(s and "aws-c7i.large" in s for s in sources[:2])
    first_default = next(i for i, s in enumerate(sources) if s is None)
    assert all(s is None for s in sources[first_default:])  # defaults after the plan


def test_a_clear_quality_miss_ends_the_plan(digits, tmp_path):
    """int8 5 % short of the bound: the relative's ranking is refuted after its first pick,
    no other transfer is measured, and the search goes on with the defaults and TPE."""
    store, here = _int8_breaks_here(digits, tmp_path, quality=0.94)
    result, order = _search(digits, here, store, trials=10, defaults=True)
    sources = _sources(result, order)
    assert here[order[0]].config["precision"].startswith("int8")
    assert "aws-c7i.large" in sources[0]
    assert all(s is None for s in sources[1:])
    assert len(order) == 10  # the budget is still spent


def test_a_search_stopped_inside_its_plan_resumes_it(digits, tmp_path):
    """The plan and the deferred defaults live in the study: a search stopped after two
    transfers takes the other four when it goes on, then the defaults, measuring nothing
    twice."""
    store, here = _int8_breaks_here(digits, tmp_path)
    runs = []
    for trials in (2, 12):
        executor = TableExecutor(here, profiles={"local": 2})
        result = optimize(digits, ["latency_p90_ms"], ["quality_ratio >= 0.99"],
                          trials=trials, space=SPACE, seed=3, study="resumed",
                          storage=f"sqlite:///{tmp_path / 'study.db'}", executor=executor,
                          knowledge=store, defaults=True)
        runs.append((result, executor.order[int(not runs):]))  # the baseline runs once
    (first, before), (second, after) = runs
    assert len(before) == 2 and not set(before) & set(after)
    sources = _sources(first, before) + _sources(second, after)
    assert sum(s is not None for s in sources) == 6  # six transfers in all
    assert all(s is not None for s in sources[:6])  # … before any default
    # Then the deferred defaults: fp32 on one thread is measured; the int8-static default's
    # artifact already missed quality here (int8 breaks on this machine) unless no int8
    # transfer used it, so it is either measured after the plan or answered by that miss.
    fp32 = Configuration(variant=digits.reference, hardware="local").normalized()
    int8 = fp32.with_updates(precision="int8-static").normalized()
    assert fp32.digest() in set(before) | set(after)
    missed = {artifact_digest(Configuration.parse(here[d].config)) for d in [*before, *after]
              if here[d].metrics.quality_ratio < 0.99}
    assert int8.digest() in after[4:] or artifact_digest(int8) in missed


def test_same_workload_and_machine_priors_inform_without_measuring(digits, tmp_path):
    local = fingerprint(load_profile("local"))
    table = _with_baseline(_relabel(_table(digits), local), digits)
    store = KnowledgeStore(tmp_path / "k.db")
    past = dict(list(table.items())[:10])
    store.record(past.values(), workload_fingerprint(digits), "local study past")
    result, order = _search(digits, table, store, trials=6)
    assert not set(order) & set(past)  # what is known is not measured again
    # Neither priors nor suggestions they answer eat the budget: six trials are measured.
    assert len(order) == 6
    answered = [r for r in result.results if r.config_digest in past]
    assert all(result.knowledge[r.trial_id] == "local study past" for r in answered)
    assert result.n_trials == len(order) + len(answered)


def test_the_same_graph_with_other_weights_is_a_relative_not_a_prior(digits, tmp_path):
    """A model of digits' very layout but other content (a retrained copy) on this machine:
    its results are transferred (they may not hold here), never added as facts."""
    local = fingerprint(load_profile("local"))
    table = _with_baseline(_relabel(_table(digits), local), digits)
    store = KnowledgeStore(tmp_path / "k.db")
    own = {d: r for d, r in table.items()
           if r.config["variant"] == digits.reference and r.trial_id != "base"}
    retrained = _relabel(dict(list(own.items())[:10]), local, sha256="e" * 64)
    store.record(retrained.values(), workload_fingerprint(digits), "retrained study")
    neighbour = store.nearest(workload_fingerprint(digits), local)[0]
    assert neighbour.similarity == 1.0
    assert not neighbour.same_as(workload_fingerprint(digits), local, digits.sha256)
    result, order = _search(digits, table, store, trials=6)
    assert order[0] in retrained  # measured here, not taken as a fact
    assert _sources(result, order[:1])[0].startswith("retrained study: digits on local")


@pytest.mark.parametrize("warm", [True, False])
def test_in_memory_replays_touch_no_default_store(digits, podium_home, warm):
    before = (podium_home / "knowledge.db").exists()
    _search(digits, _with_baseline(_table(digits), digits), None, warm=warm, trials=3)
    assert (podium_home / "knowledge.db").exists() == before


def test_cli_exports_and_imports_without_duplicates(digits, tmp_path, monkeypatch, capsys):
    from tuner.cli import main

    monkeypatch.setenv("PODIUM_HOME", str(tmp_path))  # keep the session's store clean

    KnowledgeStore().record(_table(digits).values(), workload_fingerprint(digits), "cli test")
    assert main(["knowledge", "export", str(tmp_path / "k.jsonl")]) == 0
    assert main(["knowledge", "import", str(tmp_path / "k.jsonl")]) == 0
    assert "imported 0 new trials" in capsys.readouterr().out
    assert main(["knowledge", "stats"]) == 0
    assert "cli test" in capsys.readouterr().out


def _past_search(store, search_id, workload_fp, sampler, trials_to_best, *, best=1.0,
                 measured=20):
    store.record_search(search_id, workload=workload_fp,
                        hardware_fp=fingerprint(load_profile("local")), sampler=sampler,
                        objective="latency_p90_ms", measured=measured,
                        trials_to_best=trials_to_best, best=best)


def test_auto_picks_the_sampler_that_reached_the_best_fastest_on_similar_searches(digits,
                                                                                  tmp_path):
    from tuner.knowledge.selftune import choose_sampler

    local = fingerprint(load_profile("local"))
    wfp = workload_fingerprint(digits)
    store = KnowledgeStore(tmp_path / "s.db")
    assert choose_sampler(store.searches(), wfp, local, "latency_p90_ms")[0] == "tpe"
    for index in range(2):
        _past_search(store, f"r{index}", wfp, "random", 3)
        _past_search(store, f"t{index}", wfp, "tpe", 12)
        # A TPE search that stopped at a worse best never reached it: it scores measured + 1.
        _past_search(store, f"n{index}", wfp, "nsga2", 2, best=1.5)
    chosen, reason = choose_sampler(store.searches(), wfp, local, "latency_p90_ms")
    assert chosen == "random" and "random 3.0" in reason and "nsga2 21.0" in reason
    # Other objectives and dissimilar workloads (integer tokens) teach nothing.
    assert choose_sampler(store.searches(), wfp, local, "throughput_per_s")[0] == "tpe"
    tokens = type(wfp)(ops=wfp.ops, parameters=wfp.parameters, flops=wfp.flops,
                       inputs=[["ids", "INT64", ["N", 8]]], opset=wfp.opset)
    assert choose_sampler(store.searches(), tokens, local, "latency_p90_ms")[0] == "tpe"
    # optimize() uses and reports the choice, and export/import carries the history.
    result, _ = _search(digits, _with_baseline(_table(digits), digits), store, warm=False)
    assert result.sampler == "random" and result.sampler_reason == reason
    store.export(tmp_path / "k.jsonl")
    other = KnowledgeStore(tmp_path / "o.db")
    other.import_(tmp_path / "k.jsonl")
    other.import_(tmp_path / "k.jsonl")
    assert len(other.searches()) == len(store.searches())


def test_a_cold_search_records_how_fast_it_reached_its_best(digits, tmp_path):
    store = KnowledgeStore(tmp_path / "c.db")
    result, order = _search(digits, _with_baseline(_table(digits), digits), store, warm=False,
                            trials=10)
    (search,) = store.searches()
    assert search["sampler"] == "tpe" and search["measured"] == len(order) == 10
    best = result.best.metrics.latency_p90_ms
    assert search["best"] == best and 1 <= search["trials_to_best"] <= 10
    # A warm-started search is not evidence about samplers: nothing more is recorded.
    _search(digits, _with_baseline(_table(digits), digits), store, warm=True)
    assert len(store.searches()) == 1
