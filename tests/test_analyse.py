import numpy as np
import pytest

from zooprobe.analysis.agreement import agreement_matrix
from zooprobe.analysis.rows import ALL_MODELS, SCORE_COLUMNS
from zooprobe.analysis.scores import Design, ProbeRun, score_table
from zooprobe.analysis.imagenot import imagenot_table, variable_table


def _run(model, skill_by_layer, rng, n=400):
    layers = list(skill_by_layer)
    labels = {"id": rng.integers(0, 2, n), "ood": rng.integers(0, 2, n)}
    predictions = {}
    for name, shift in (("id", 0.0), ("ood", 0.15)):
        predictions[name] = {layer: np.where(rng.random(n) < skill - shift, labels[name], 1 - labels[name])
                             for layer, skill in skill_by_layer.items()}
    val = {layer: skill for layer, skill in skill_by_layer.items()}
    return ProbeRun(model, "t", predictions, labels, {"layers": layers, "val_accuracy": val, "id_eval": "id"})


def test_score_table_ranks_selects_layers_and_compares_benchmarks():
    rng = np.random.default_rng(0)
    runs = [_run("strong", {"block0": 0.7, "pre_logits": 0.95}, rng),
            _run("middle", {"block0": 0.8, "pre_logits": 0.75}, rng),
            _run("weak", {"block0": 0.6, "pre_logits": 0.55}, rng)]
    scores = score_table(runs, n_boot=100, seed=0)
    assert list(scores.columns) == ["benchmark", "model", "layer", "metric", "value", "ci_low", "ci_high", "n",
                                    "method", "resampled"]
    selected = scores[scores.metric == "score"].set_index(["benchmark", "model"])
    assert selected.loc[("id", "strong"), "layer"] == "pre_logits"
    assert selected.loc[("id", "middle"), "layer"] == "block0"  # chosen on validation, not test
    ranks = scores[(scores.metric == "rank") & (scores.benchmark == "id")].set_index("model").value
    assert ranks.to_dict() == {"strong": 1.0, "middle": 2.0, "weak": 3.0}
    pair = scores[(scores.model == ALL_MODELS) & (scores.benchmark == "id~ood")].set_index("metric")
    for interval in ("kendall_tau_given_zoo", "kendall_tau_population"):
        assert pair.loc[interval, "value"] == pytest.approx(1.0) and pair.loc[interval, "ci_low"] <= 1.0
    assert pair.loc["kendall_tau_given_zoo", "method"] == "percentile, widened by the bootstrap's bias estimate"
    # tau = 1: every pair of the 3 units ordered alike, so the population interval is the exact bound.
    assert pair.loc["kendall_tau_population", "method"].startswith("exact binomial bound")
    assert pair.loc["kendall_tau_pvalue", "method"] == "permutation, exact (6 orders of 3 units)"
    assert pair.loc["kendall_tau_pvalue_holm", "method"] == "Holm over 1 pairs of benchmarks"
    retained = scores[(scores.metric == "shift_retained_pct") & (scores.model == "middle")].iloc[0]
    accuracy = scores[(scores.metric == "accuracy") & (scores.benchmark == "ood") & (scores.model == "middle")]
    by_layer = accuracy.set_index("layer").value
    assert retained.value == pytest.approx(100 * by_layer["pre_logits"] / by_layer.max())
    assert retained.ci_low <= retained.value <= retained.ci_high and retained.ci_low < retained.ci_high
    assert retained.resampled == "ID and OOD test examples (independent draws)"
    names, value, low, high = agreement_matrix(scores)
    assert names == ["id", "ood"] and value[0, 1] == value[1, 0] == pytest.approx(1.0)


def test_own_head_and_published_accuracy_are_scored_and_reported():
    from zooprobe.report.sections import head_section

    rng = np.random.default_rng(1)
    runs = []
    for model, head_skill, published in (("a", 0.9, 93.0), ("b", 0.7, 91.0)):
        run = _run(model, {"block0": 0.6, "pre_logits": 0.8}, rng)
        run.head = {name: np.where(rng.random(len(y)) < head_skill, y, 1 - y) for name, y in run.labels.items()}
        run.provenance["checkpoint_info"] = {"best_prec1": published}
        runs.append(run)
    scores = score_table(runs, n_boot=50, seed=0)
    head = scores[scores.metric == "head_accuracy"].set_index(["benchmark", "model"]).value
    expected = (runs[0].head["ood"] == runs[0].labels["ood"]).mean()
    assert head[("ood", "a")] == pytest.approx(expected)
    published = scores[scores.metric == "published_accuracy"]
    assert published.benchmark.tolist() == ["id", "id"] and published.value.tolist() == pytest.approx([0.93, 0.91])
    section = head_section(scores).html
    assert "Published order on id: holds." in section
    runs[1].provenance["checkpoint_info"] = {"best_prec1": 95.0}
    assert "Published order on id: contradicted." in head_section(score_table(runs, n_boot=50, seed=0))


SWEEP = {"architectures": {"small": {"arch": "resnet10t"}, "mid": {"arch": "resnet14t"}, "big": {"arch": "resnet18"}},
         "datasets": ["a", "b"], "seeds": [0, 1], "baseline": "small"}
SKILL = {"small": 0.6, "mid": 0.7, "big": 0.85, "huge": 0.9}


def _sweep_runs(rng, n=600, skill_b_shift=0.0, sweep=None):
    from zooprobe.params.config import sweep_members

    runs = []
    for member in sweep_members({"sweep": sweep or SWEEP}).values():
        skill = SKILL[member.arch] + (skill_b_shift if member.dataset == "b" else 0.0)
        labels = {member.dataset: rng.integers(0, 4, n)}
        y = labels[member.dataset]
        guess = np.where(rng.random(n) < skill, y, (y + 1) % 4)
        predictions = {member.dataset: {"pre_logits": guess}}
        provenance = {"layers": ["pre_logits"], "val_accuracy": {"pre_logits": skill}, "id_eval": member.dataset}
        runs.append(ProbeRun(member.name, member.dataset, predictions, labels, provenance,
                             head={member.dataset: guess}))
    return runs


def test_imagenot_ranks_architectures_across_datasets_with_improvement_fit():
    runs = _sweep_runs(np.random.default_rng(0))
    table = imagenot_table(runs, SWEEP, n_boot=200, seed=0)
    accuracy = table[table.metric == "imagenot_accuracy"].set_index(["benchmark", "model"])
    own = [r for r in runs if r.model in ("big-a-s0", "big-a-s1")]
    expected = np.mean([(r.head["a"] == r.labels["a"]).mean() for r in own])
    assert accuracy.loc[("a", "big"), "value"] == pytest.approx(expected)
    assert accuracy.loc[("a", "big"), "n"] == 2
    improvement = table[table.metric == "relative_improvement"].set_index(["benchmark", "model"]).value
    assert improvement[("a", "small")] == 0.0
    assert improvement[("b", "big")] == pytest.approx(
        100 * (accuracy.loc[("b", "big"), "value"] / accuracy.loc[("b", "small"), "value"] - 1))
    assert accuracy.loc[("a", "big"), "resampled"] == "seeds of each unit (residuals pooled over 3 units); test examples"
    pair = table[table.benchmark == "a~b"].set_index("metric")
    for interval in ("imagenot_kendall_tau_given_zoo", "imagenot_kendall_tau_population"):
        assert pair.loc[interval, "value"] == pytest.approx(1.0) and pair.loc[interval, "ci_low"] <= 1.0
    assert pair.loc["imagenot_kendall_tau_pvalue", "value"] == pytest.approx(2 / 6)  # 3 architectures: 3! orders
    assert pair.loc["improvement_slope", "n"] == 2  # the baseline is not a point of the fit
    assert np.isnan(pair.loc["improvement_r2", "value"])  # two points: no R^2
    sd = table[table.metric == "seed_sd"].set_index(["benchmark", "model"]).value
    accs = [(r.head["a"] == r.labels["a"]).mean() for r in own]
    assert sd[("a", "big")] == pytest.approx(np.std(accs, ddof=1))


def test_the_same_seed_gives_identical_bootstraps_in_the_pipeline():
    runs = _sweep_runs(np.random.default_rng(2))
    first = imagenot_table(runs, SWEEP, n_boot=100, seed=5)
    again = imagenot_table(runs, SWEEP, n_boot=100, seed=5)
    assert first.equals(again)
    other = imagenot_table(runs, SWEEP, n_boot=100, seed=6)
    assert not first.equals(other) and (first.value.fillna(-9) == other.value.fillna(-9)).all()
    plain = [_run(m, {"b0": s, "pre_logits": s}, np.random.default_rng(3)) for m, s in (("x", 0.6), ("y", 0.8))]
    assert score_table(plain, n_boot=100, seed=1).equals(score_table(plain, n_boot=100, seed=1))


def test_imagenot_needs_an_own_head_score_for_every_sweep_model():
    runs = _sweep_runs(np.random.default_rng(0))[1:]
    with pytest.raises(ValueError, match="no own-head scores for sweep models"):
        imagenot_table(runs, SWEEP, n_boot=10, seed=0)


def test_variable_table_pairs_models_that_differ_in_one_variable():
    import pandas as pd

    from zooprobe.params.config import sweep_members

    sweep = dict(SWEEP, datasets=["a"], seeds=[0, 1, 2], variants={"augment": [False, True]})
    rows = []
    for member in sweep_members({"sweep": sweep}).values():
        augmented = dict(member.settings)["augment"]
        base = {"small": 60.0, "mid": 70.0, "big": 80.0}[member.arch] + member.seed
        rows.append(dict(benchmark="a_ood", model=member.name, layer="pre_logits", metric="tunnel_retained_pct",
                         value=base + (5.0 if augmented else 0.0), ci_low=np.nan, ci_high=np.nan, n=10,
                         method="", resampled=""))
    table = variable_table(pd.DataFrame(rows, columns=SCORE_COLUMNS), sweep)
    result = table[table.layer == "tunnel_retained_pct"].set_index("metric")
    assert result.loc["cliffs_delta", "model"] == "augment=true vs augment=false"
    assert result.loc["median_difference", "value"] == 5.0 and result.loc["median_difference", "n"] == 9
    assert result.loc["cliffs_delta", "value"] > 0
    assert result.loc["wilcoxon_p", "value"] < 0.01
    # One family: four metrics, three of them untestable (no pairs have them), so Holm multiplies by 1.
    assert result.loc["wilcoxon_p_holm", "value"] == pytest.approx(result.loc["wilcoxon_p", "value"])
    assert result.loc["wilcoxon_p_holm", "method"] == "Holm over 1 variable tests"


def test_report_shows_imagenot_tau_with_ci_improvement_fit_and_seed_check():
    from zooprobe.report.sections import imagenot_section

    sweep = dict(SWEEP, architectures=dict(SWEEP["architectures"], huge={"arch": "resnet26"}))
    runs = _sweep_runs(np.random.default_rng(4), sweep=sweep)
    page = imagenot_section(imagenot_table(runs, sweep, n_boot=50, seed=0), sweep).html
    # Four architectures: no permutation p can be below 2/4! = 0.083, and the page says so.
    assert "ImageNot protocol" in page and "<b>a vs b:</b> the ranking not established (Kendall tau 1.00" in page
    assert "4 units cannot give a permutation p below 0.083" in page and "Given the zoo" in page
    assert "slope" in page and "R²" in page and page.count("alt='improvement scatter'") == 1
    assert "neighbouring differences are larger than seed-to-seed and test-set variation allow" in page


def test_seed_replicas_get_mean_and_sd_and_the_report_checks_rank_gaps():
    from zooprobe.report.sections import seed_section

    rng = np.random.default_rng(5)
    runs = [_run(f"{name}-s{seed}", {"b0": skill, "pre_logits": skill + 0.01 * seed}, rng)
            for name, skill in (("wide", 0.8), ("thin", 0.6)) for seed in (0, 1, 2)]
    runs.append(_run("single", {"b0": 0.7, "pre_logits": 0.7}, rng))
    design = Design(units={f"{name}-s{seed}": name for name in ("wide", "thin") for seed in (0, 1, 2)})
    scores = score_table(runs, n_boot=200, seed=0, design=design)
    seeds = scores[scores.metric.isin(["seed_mean", "seed_sd"])]
    assert set(seeds.model) == {"wide", "thin"}  # one seed is no spread
    chosen = scores[(scores.metric == "score") & (scores.benchmark == "id")].set_index("model").value
    wide = chosen[["wide-s0", "wide-s1", "wide-s2"]]
    row = seeds[(seeds.benchmark == "id") & (seeds.model == "wide")].set_index("metric")
    assert row.loc["seed_mean", "value"] == pytest.approx(wide.mean())
    assert row.loc["seed_sd", "value"] == pytest.approx(wide.std(ddof=1)) and row.loc["seed_sd", "n"] == 3
    assert row.loc["seed_mean", "ci_low"] < row.loc["seed_mean", "value"] < row.loc["seed_mean", "ci_high"]
    section = seed_section(scores).html
    assert "wide &minus; thin" in section and "1 of 1 neighbouring differences are larger" in section
    # Seeds are one unit: the agreement over id~ood counts 3 units (wide, thin, single), not 7 models.
    tau = scores[scores.metric == "kendall_tau_given_zoo"].iloc[0]
    assert tau.n == 3


def _paired_runs(rng, n=400):
    """Two models right on the same 50% of examples; 'better' is also right on 6% more. Each model's
    own 95% interval is about +-0.05 wide, so the two overlap; the paired difference is clear."""
    labels = {"id": rng.integers(0, 2, n), "ood": rng.integers(0, 2, n)}
    shared = rng.random(n) < 0.5
    extra = ~shared & (rng.random(n) < 0.12)
    runs = []
    for model, right in (("better", shared | extra), ("worse", shared), ("other", rng.random(n) < 0.3)):
        predictions = {name: {"pre_logits": np.where(right, y, 1 - y)} for name, y in labels.items()}
        runs.append(ProbeRun(model, "t", predictions, labels, {"layers": ["pre_logits"],
                                                                "val_accuracy": {"pre_logits": 0.5}, "id_eval": "id"}))
    return runs


def test_trained_against_random_init_is_a_paired_comparison_with_holm():
    from zooprobe.analysis import verdicts

    runs = _paired_runs(np.random.default_rng(7))
    scores = score_table(runs, n_boot=1000, seed=0, design=Design(random_init_pairs=(("better", "worse"),)))
    chosen = scores[(scores.metric == "score") & (scores.benchmark == "id")].set_index("model")
    assert chosen.loc["better", "ci_low"] < chosen.loc["worse", "ci_high"]  # the marginal intervals overlap
    records = verdicts.random_init_comparisons(scores)
    assert [(r["benchmark"], r["verdict"]) for r in records] == [("id", "beats"), ("ood", "beats")]
    diff = scores[(scores.metric == "trained_minus_random_init") & (scores.benchmark == "id")].iloc[0]
    assert diff.model == "better - worse" and diff.ci_low > 0
    holm = scores[scores.metric == "trained_minus_random_init_pvalue_holm"]
    raw = scores[scores.metric == "trained_minus_random_init_pvalue"]
    assert (holm.value.to_numpy() >= raw.value.to_numpy()).all() and set(holm.method) == {
        "Holm over 2 trained/random-init comparisons"}


def test_sets_that_share_rows_are_resampled_with_one_joint_draw():
    rng = np.random.default_rng(8)
    runs = [_run(m, {"pre_logits": s}, rng) for m, s in (("a", 0.70), ("b", 0.72), ("c", 0.74), ("d", 0.76))]
    for run in runs:  # the OOD set is an exact copy of the ID test rows: same labels, same predictions
        run.labels["ood"] = run.labels["id"]
        run.predictions["ood"] = dict(run.predictions["id"])
    joint = score_table(runs, n_boot=300, seed=0, design=Design(shared_rows={"ood": "id"}))
    apart = score_table(runs, n_boot=300, seed=0)
    tau = {name: t[t.metric == "kendall_tau_given_zoo"].iloc[0] for name, t in (("joint", joint), ("apart", apart))}
    # A copy redrawn with the same rows ranks the models identically in every replicate.
    assert (tau["joint"].ci_low, tau["joint"].ci_high) == (1.0, 1.0)
    assert "one joint draw" in tau["joint"].resampled
    assert tau["apart"].ci_low < 0.7 and "each set's own draw" in tau["apart"].resampled
    with pytest.raises(ValueError, match="shares rows with 'id'"):
        for run in runs:
            run.labels["ood"], run.predictions["ood"] = run.labels["id"][:-1], {"pre_logits": run.predictions["id"]["pre_logits"][:-1]}
        score_table(runs, n_boot=10, seed=0, design=Design(shared_rows={"ood": "id"}))


def test_analysis_design_from_the_params():
    from zooprobe.params.config import analysis_design, analysis_design_keys

    config = {"datasets": {"base": {"source": "procedural"}, "noisy": {"source": "shift", "of": "base"},
                           "noisier": {"source": "shift", "of": "noisy"},
                           "few": {"source": "corrupt", "of": "base", "max_per_class": 5},
                           "spread": {"source": "corrupt", "of": "base", "every": 4},
                           "all_rows": {"source": "corrupt", "of": "base", "every": 1}},
              "models": {"net": {"source": "trained", "arch": "resnet18", "seeds": [0, 1]},
                         "net_random": {"source": "timm", "arch": "resnet18"},
                         "solo": {"source": "trained", "arch": "resnet10t"}}}
    design = analysis_design(config)
    assert design["units"] == {"net-s0": "net", "net-s1": "net"}
    assert design["shared_rows"] == {"noisy": "base", "noisier": "base", "all_rows": "base"}  # a subset does not share rows
    assert design["random_init_pairs"] == [["net-s0", "net_random"], ["net-s1", "net_random"]]
    assert analysis_design_keys(config) == ["models.net", "models.net_random", "datasets.all_rows", "datasets.noisier",
                                            "datasets.noisy"]


def test_run_analysis_reads_results_in_order_and_writes_the_table_and_its_summary(tmp_path):
    import json

    import pandas as pd

    from zooprobe.analysis import verdicts
    from zooprobe.analysis.run import read_alignment_payloads, run_analysis
    from zooprobe.io import h5io

    rng = np.random.default_rng(7)
    paths = []
    for model, skill in (("weak", 0.6), ("strong", 0.9), ("mid", 0.75)):
        run = _run(model, {"b0": skill - 0.1, "pre_logits": skill}, rng)
        provenance = dict(run.provenance, model=model, task="t", arch=model, weights_sha256="0" * 64,
                          pooling="avg", preprocessing={}, seed=0, zooprobe_version="test")
        paths.append(tmp_path / f"{model}.h5")
        h5io.write_probe_result(paths[-1], predictions=run.predictions, labels=run.labels, provenance=provenance)
    # One file holding one payload, one holding a list: both are flattened; kind "dense" sorts them apart.
    (tmp_path / "align.json").write_text(json.dumps({"benchmark": "sim", "kind": "alignment"}))
    (tmp_path / "dense.json").write_text(json.dumps([{"benchmark": "depth@s", "kind": "dense"}]))
    assert read_alignment_payloads([tmp_path / "align.json", tmp_path / "dense.json"]) == [
        {"benchmark": "sim", "kind": "alignment"}, {"benchmark": "depth@s", "kind": "dense"}]
    scores = run_analysis(probes=paths, alignment=[], settings={"n_bootstrap": 50, "seed": 0}, sweep=None,
                          design=None, scores_path=tmp_path / "scores.csv", summary_path=tmp_path / "summary.json")
    written = pd.read_csv(tmp_path / "scores.csv")
    assert len(written) == len(scores) and list(written.columns) == SCORE_COLUMNS
    assert not any(written.metric.str.startswith("imagenot_"))  # no sweep, no ImageNot rows
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [p["model"] for p in summary["provenance"]] == ["weak", "strong", "mid"]  # the order given
    assert summary["provenance"][1]["selected_layer"] == "pre_logits"
    assert summary["layer_order"] == {m: ["b0", "pre_logits"] for m in ("weak", "strong", "mid")}
    assert summary["id_benchmarks"] == ["id"] and summary["dense_benchmarks"] == []
    assert [r["verdict"] for r in summary["agreement"]["kendall_tau"]] == \
        [r["verdict"] for r in verdicts.agreement_findings(scores)]
    assert summary["agreement"]["imagenot_kendall_tau"] == []


def test_report_inputs_are_explicit_and_icn_grids_come_in_round_order(tmp_path):
    import json

    from zooprobe.report.render import read_icn_grids, read_report_inputs

    summary = {"layer_order": {"m": ["b0", "pre_logits"]}, "id_benchmarks": ["id"], "provenance": [{"model": "m"}],
               "dense_benchmarks": ["depth@s"]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "scores.csv").write_text(",".join(SCORE_COLUMNS) + "\nid,m,b0,accuracy,0.5,0.4,0.6,10,percentile,x\n")
    rounds = {f"round_{i}": np.full((2, 2, 3), i, dtype=np.uint8) for i in (10, 2, 1)}
    np.savez(tmp_path / "grid.npz", dataset="mnist", arch="small", seed=3, **rounds)
    (tmp_path / "icn.json").write_text(json.dumps({"verdicts": []}))
    (grid,) = read_icn_grids([tmp_path / "grid.npz"])
    assert (grid["dataset"], grid["arch"], grid["seed"]) == ("mnist", "small", 3)
    assert [int(r[0, 0, 0]) for r in grid["rounds"]] == [1, 2, 10]  # numeric order, not round_1, round_10, round_2
    inputs = read_report_inputs(scores_path=tmp_path / "scores.csv", summary_path=tmp_path / "summary.json",
                                config={"k": 1}, settings={})
    assert inputs.id_benchmarks == ["id"] and inputs.layer_order == {"m": ["b0", "pre_logits"]}
    assert inputs.alignment_benchmarks == [] and inputs.dense_benchmarks == ["depth@s"]
    assert inputs.title == "zooprobe report" and inputs.introspective is None and len(inputs.scores) == 1
    # The grids are read only beside an ICN summary, as the report shows them only in its ICN section.
    inputs = read_report_inputs(scores_path=tmp_path / "scores.csv", summary_path=tmp_path / "summary.json",
                                config={}, settings={"title": "t"}, icn_summary=[tmp_path / "icn.json"],
                                icn_grids=[tmp_path / "grid.npz"])
    assert inputs.title == "t" and inputs.introspective["verdicts"] == []
    assert inputs.introspective["grids"][0]["seed"] == 3
