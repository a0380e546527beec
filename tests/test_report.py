"""The report page as a reader's document: findings first, words from the verdict records, navigation,
one colour per model, per-model provenance and escaping; rendered from synthetic probe runs."""
from html.parser import HTMLParser

import numpy as np
import pytest

from zooprobe.analysis import verdicts
from zooprobe.analysis.scores import ProbeRun, score_table


def _run(model, skill, rng, *, n=300, ood_shift=0.1, task="t"):
    """A probe run over two layers whose ID and OOD accuracies follow ``skill``."""
    labels = {"id": rng.integers(0, 2, n), "ood": rng.integers(0, 2, n)}
    predictions = {name: {layer: np.where(rng.random(n) < s - shift, labels[name], 1 - labels[name])
                          for layer, s in (("block0", skill - 0.1), ("pre_logits", skill))}
                   for name, shift in (("id", 0.0), ("ood", ood_shift))}
    provenance = {"layers": ["block0", "pre_logits"], "val_accuracy": {"block0": skill - 0.1, "pre_logits": skill},
                  "id_eval": "id", "model": model, "task": task, "arch": "resnet", "weights_sha256": "ab" * 32,
                  "pooling": "avg", "preprocessing": {"input_size": 32, "interpolation": "bilinear"}, "seed": 0,
                  "zooprobe_version": "0.1.0"}
    return ProbeRun(model, task, predictions, labels, provenance)


def _inputs(models_skills, *, rng_seed=0, title="a test"):
    from zooprobe.report.render import ReportInputs

    rng = np.random.default_rng(rng_seed)
    runs = [_run(model, skill, rng) for model, skill in models_skills]
    scores = score_table(runs, n_boot=100, seed=0)
    provenance = [{k: run.provenance[k] for k in ("model", "task", "arch", "weights_sha256", "pooling",
                                                   "preprocessing", "seed", "zooprobe_version")}
                  | {"selected_layer": "pre_logits"} for run in runs]
    return ReportInputs(scores=scores, layer_order={m: ["block0", "pre_logits"] for m, _ in models_skills},
                        id_benchmarks=["id"], alignment_benchmarks=[], dense_benchmarks=[], provenance=provenance,
                        config={"probe": {"c_grid": [0.1, 1.0]}, "models": {m: {} for m, _ in models_skills}},
                        title=title)


class _Page(HTMLParser):
    """Ids, TOC links, section order and the text of each findings item."""

    def __init__(self):
        super().__init__()
        self.ids, self.toc_links, self.sections, self.findings = [], [], [], []
        self._in_toc = self._in_finding = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "nav" and attrs.get("id") == "toc":
            self._in_toc = True
        if tag == "a" and self._in_toc:
            self.toc_links.append(attrs["href"])
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "li" and attrs.get("class") in ("result", "weak", "note"):
            self._in_finding = True
            self.findings.append("")

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_toc = False
        if tag == "li":
            self._in_finding = False

    def handle_data(self, data):
        if self._in_finding:
            self.findings[-1] += data


def _parse(page):
    parser = _Page()
    parser.feed(page)
    return parser


SIX = [("m1", 0.95), ("m2", 0.9), ("m3", 0.85), ("m4", 0.8), ("m5", 0.75), ("m6", 0.7)]


@pytest.fixture(scope="module")
def six():
    """Six models' inputs and their rendered page, shared by the tests that only read them."""
    from zooprobe.report.render import render_report

    inputs = _inputs(SIX)
    return inputs, render_report(inputs)


def test_the_page_opens_with_findings_worded_from_the_verdict_records(six):
    inputs, page = six
    parsed = _parse(page)
    assert parsed.sections[0] == "findings" and parsed.sections[-1] == "provenance"
    (record,) = verdicts.agreement_findings(inputs.scores)
    sentences = parsed.findings
    assert sentences[0].startswith("result") or sentences[0].startswith("too weak")
    # The pair's sentence carries tau, both intervals and the Holm-adjusted p of its record.
    pair = next(s for s in sentences if "Kendall tau" in s and "given the zoo" in s)
    assert f"{record['value']:.2f}" in pair and f"Holm-adjusted p = {record['p_holm']:.3g}" in pair
    assert "[{:.2f}, {:.2f}]".format(*record["given_zoo"]) in pair
    assert "[{:.2f}, {:.2f}]".format(*record["population"]) in pair
    word = {"holds": "holds on", "reverses": "reverses on", "not established": "cannot be said"}[record["verdict"]]
    assert word in pair


def test_too_few_models_are_said_to_be_too_weak_evidence():
    from zooprobe.report.render import render_report

    page = render_report(_inputs(SIX[:3]))
    parsed = _parse(page)
    pair = next(s for s in parsed.findings if "Kendall tau" in s and "given the zoo" in s)
    # 3 units: no permutation p can be below 2/3! = 0.333, whatever tau is.
    assert pair.startswith("too weak to say") and "3 units cannot give a permutation p below 0.333" in pair
    assert "cannot be said" in pair and "holds on ood (" not in pair


def test_navigation_sections_and_provenance_per_model(six):
    inputs, page = six
    parsed = _parse(page)
    assert parsed.toc_links and all(link.startswith("#") for link in parsed.toc_links)
    assert {link[1:] for link in parsed.toc_links} <= set(parsed.ids)
    assert len(parsed.ids) == len(set(parsed.ids))
    # Only what ran: OOD sets give the ID probes under shift, but no ImageNot, alignment, dense or ICN section.
    for absent in ("imagenot", "alignment", "dense", "introspective", "heads", "seeds"):
        assert absent not in parsed.sections
    assert "Ranking agreement between benchmarks" not in page  # the old doubled heading
    provenance = page.split("id=\"provenance\"")[1]
    for model, _ in SIX:
        assert provenance.count(f"<td>{model}</td>") == 1
    assert "weights_sha256" in provenance and "preprocessing: interpolation" in provenance
    assert "{'input_size'" not in page and "c_grid:\n  - 0.1" in page  # params as YAML, no dict reprs in cells
    assert page.count("class=\"dataframe sortable\"") >= 4 and "aria-sort" in page
    assert "http://" not in page and "https://" not in page


def test_user_names_are_escaped():
    from zooprobe.report.render import render_report

    page = render_report(_inputs([("<script>alert(1)</script>", 0.9), *SIX[1:4]], title="<b>t</b>"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>t</b>" not in page


def test_one_style_per_model_in_every_figure(six):
    import matplotlib.colors as mcolors

    from zooprobe.report.figures import bump_chart, layer_curves, model_colours, score_plot

    inputs, _ = six
    colours = model_colours([m for m, _ in reversed(SIX)])
    assert colours == model_colours([m for m, _ in SIX])  # the order a table lists models in does not matter
    assert len({c for c, _ in colours.values()}) == len(SIX)
    for figure in (bump_chart(inputs.scores, colours), layer_curves(inputs.scores, inputs.layer_order, ["id"], colours)):
        lines = [line for ax in figure.axes for line in ax.get_lines() if line.get_label() in colours]
        assert lines
        for line in lines:
            assert mcolors.to_hex(line.get_color()) == colours[line.get_label()][0].lower()
    figure = score_plot(inputs.scores, ["id", "ood"], colours)
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    values = inputs.scores[(inputs.scores.metric == "score") & (inputs.scores.benchmark == "id")].set_index("model")
    assert ticks == list(values.value.sort_values().index)  # best on top


@pytest.mark.parametrize("models", [[f"model{i}" for i in range(30)]])
def test_large_zoos_reuse_colours_with_other_markers(models):
    from zooprobe.report.figures import COLOUR_BLIND_SAFE, model_colours

    styles = model_colours(models)
    assert len(set(styles.values())) == len(models) and len({c for c, _ in styles.values()}) == len(COLOUR_BLIND_SAFE)
