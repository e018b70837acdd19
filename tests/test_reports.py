"""Participant and group HTML reports: figures alone, the rendered pages, and headless Chromium."""

from __future__ import annotations

import base64
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from samba_bids.reports import (
    EphysOnlyRun,
    GroupReport,
    ParticipantReport,
    ParticipantSummary,
    figures,
    render_group_report,
    render_participant_report,
)
from samba_bids.reports.page import FIGURE_ERROR, format_value
from samba_bids.reports.participant import participant_report_html

TR_S = 2.0
N_VOLUMES = 120
TRAIN = np.arange(0, 70)
VALIDATION = np.arange(75, 90)
TEST = np.arange(95, 120)
BANDS = ["A3", "D3", "D2", "D1"]
BAND_RANGES = [(0.5, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0)]
EVIL_WARNING = "<script>alert('x')</script> window shorter than the HRF & co"
EVIL_PARAMETER = "<b>bold</b> & \"quoted\""
CHROMIUM = (os.environ.get("SAMBA_BIDS_CHROMIUM")
            or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                else shutil.which("chromium") or "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def parcel_names(networks=("Vis", "Default"), per=5):
    """20 Schaefer-style names: 2 networks x 2 hemispheres x 5 parcels."""
    return [f"7Networks_{hemi}_{net}_{k}" for net in networks for hemi in ("LH", "RH")
            for k in range(1, per + 1)]


def centroids(names, rng):
    xs = np.array([-40.0 if "_LH_" in n else 40.0 for n in names])
    return np.column_stack([xs + rng.normal(0, 8, len(names)),
                            rng.uniform(-90, 50, len(names)), rng.uniform(-20, 60, len(names))])


def pearson(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def double_gamma(t, peak, undershoot=16.0, ratio=6.0):
    h = stats.gamma.pdf(t, peak) - stats.gamma.pdf(t, undershoot) / ratio
    return h / h.max()


def make_run(label="sub-01_task-rest_run-1", seed=0, *, full=True):
    """A synthetic run: predicted = observed + parcel-specific noise, so r spreads widely."""
    rng = np.random.default_rng(seed)
    names = parcel_names()
    m = len(names)
    raw = rng.standard_normal((m, N_VOLUMES + 8))
    observed = np.stack([np.convolve(row, np.ones(8) / 8, mode="valid") for row in raw])
    observed = stats.zscore(observed[:, :N_VOLUMES], axis=1)
    noise_scale = rng.permutation(np.linspace(0.1, 4.0, m))
    predicted = observed + noise_scale[:, None] * rng.standard_normal(observed.shape)
    predicted = stats.zscore(predicted, axis=1)
    predicted[:, :3] = np.nan  # no prediction for the first volumes (HRF history)
    r = np.array([pearson(observed[i, TEST], predicted[i, TEST]) for i in range(m)])
    rho = np.array([stats.spearmanr(observed[i, TEST], predicted[i, TEST])[0] for i in range(m)])
    p = np.clip(0.5 - r, 1e-3, 1.0)
    ridge = 0.6 * r + rng.normal(0, 0.05, m)
    metrics = pd.DataFrame({"parcel": names, "pearson_r": r, "spearman_rho": rho, "p_value": p,
                            "p_fdr": np.minimum(p * 2, 1.0), "significant": p * 2 < 0.05,
                            "ridge_pearson_r": ridge, "ridge_spearman_rho": ridge})
    t = np.arange(0, 32, 0.5)
    peaks = np.array([5.0 if "_Vis_" in n else 7.0 for n in names]) + rng.normal(0, 0.3, m)
    curves = np.stack([double_gamma(t, pk) for pk in peaks])
    ttp = t[np.argmax(curves, axis=1)]
    hrf = pd.DataFrame({"parcel": names, "response_delay_s": peaks,
                        "undershoot_delay_s": 16.0, "response_dispersion_s": 1.0,
                        "undershoot_dispersion_s": 1.0, "response_undershoot_ratio": 6.0,
                        "onset_s": 0.0, "time_to_peak_s": ttp})
    epochs = np.arange(1, 41)
    history = pd.DataFrame({"epoch": epochs, "train_loss": 1.0 / np.sqrt(epochs),
                            "val_loss": 0.5 + 0.0005 * (epochs - 25) ** 2})
    src_names = parcel_names(("Vis", "SomMot", "Default"), per=5)
    attention = rng.dirichlet(np.ones(len(BANDS)) * 3, size=len(src_names))
    comparison = pd.DataFrame({"model": ["SAMBA", "ridge"],
                               "median_pearson_r": [np.median(r), np.median(ridge)],
                               "median_spearman_rho": [np.median(rho), np.median(ridge)],
                               "pooled_spearman": [0.31, 0.2]})
    reverse = pd.DataFrame({"source_parcel": np.repeat(src_names, len(BANDS)),
                            "band": BANDS * len(src_names),
                            "pearson_r": rng.uniform(-0.2, 0.5, len(src_names) * len(BANDS)),
                            "significant": rng.random(len(src_names) * len(BANDS)) < 0.3})
    kwargs = {}
    if full:
        kwargs = {"attention": attention, "band_names": BANDS, "band_ranges_hz": BAND_RANGES,
                  "comparison": comparison, "reverse": reverse, "source_names": src_names}
    report = ParticipantReport(
        label=label, tr_s=TR_S, parcel_names=names, centroids_mm=centroids(names, rng),
        observed=observed, predicted=predicted, test_volumes=TEST, train_volumes=TRAIN,
        validation_volumes=VALIDATION, metrics=metrics, hrf=hrf, hrf_time_s=t,
        hrf_curves=curves, canonical_hrf=double_gamma(t, 6.0), history=history, best_epoch=25,
        parameters={"model": "samba", "learning_rate": 1e-3, "note": EVIL_PARAMETER},
        provenance={"source_reconstruction": {"method": "dSPM", "bem": "fsaverage 3-layer"},
                    "atlas": {"name": "Schaefer2018", "scale": 200}},
        warnings=[EVIL_WARNING, "Only 25 test volumes."], **kwargs)
    return report, r


def make_group(seed=1):
    rng = np.random.default_rng(seed)
    names = parcel_names()
    n_runs = 6
    table = pd.DataFrame({
        "participant": [f"{k:02d}" for k in (1, 1, 2, 2, 3, 3)], "session": "n/a",
        "task": "rest", "run": [1, 2] * 3,
        "median_pearson_r": rng.uniform(0.1, 0.4, n_runs),
        "ridge_median_pearson_r": rng.uniform(0.0, 0.3, n_runs),
        "fraction_significant": rng.uniform(0, 1, n_runs),
        "median_time_to_peak_s": rng.uniform(4.5, 6.5, n_runs),
        "n_test_volumes": 25, "best_epoch": rng.integers(5, 40, n_runs)})
    parcels = pd.DataFrame({"parcel": names, "mean_pearson_r": rng.uniform(-0.1, 0.5, 20),
                            "sd_pearson_r": rng.uniform(0.05, 0.2, 20),
                            "mean_time_to_peak_s": rng.uniform(4, 7, 20),
                            "sd_time_to_peak_s": rng.uniform(0.1, 1, 20), "n": n_runs})
    return GroupReport(table=table, parcels=parcels, centroids_mm=centroids(names, rng),
                       parcel_names=names, parameters={"note": EVIL_PARAMETER},
                       warnings=[EVIL_WARNING], provenance={"inputs": {"n_runs": n_runs}})


EPHYS_LABEL = "sub-01_task-rest_run-4"


def make_ephys_only(label=EPHYS_LABEL, seed=5):
    """An EEG/MEG-only run: predicted BOLD only, NaN over the first volumes."""
    rng = np.random.default_rng(seed)
    names = parcel_names()
    predicted = stats.zscore(rng.standard_normal((len(names), 80)), axis=1)
    predicted[:, :3] = np.nan
    return EphysOnlyRun(label=label, predicted=predicted, tr_s=TR_S, parcel_names=names,
                        provenance={"Model": "sub-01_desc-samba_model.pt",
                                    "Volume timing": "volume triggers 'Volume'"})


def make_summary(reports, *, ephys_only=(), with_hrf=True):
    """A participant summary of ``reports``: one model across runs, cross-validated by run."""
    runs = pd.DataFrame({
        "run": [r.label for r in reports], "cross_validation": "runs",
        "trained_on": [", ".join(o.label for o in reports if o is not r) for r in reports],
        "median_pearson_r": [float(np.median(r.test_r())) for r in reports],
        "ridge_median_pearson_r": [float(np.median(r.metrics["ridge_pearson_r"]))
                                   for r in reports],
        "n_test_volumes": [int(r.test_volumes.size) for r in reports]})
    first = reports[0] if reports else make_run(full=False)[0]
    return ParticipantSummary(
        runs=runs, model={"Model file": "sub-01_desc-samba_model.pt",
                          "Trained on": f"{len(reports)} runs", "Cross-validation": "by run",
                          "Best epoch": 12, "note": EVIL_PARAMETER},
        hrf=first.hrf if with_hrf else None,
        centroids_mm=first.centroids_mm if with_hrf else None, ephys_only=list(ephys_only))


@pytest.fixture(scope="module")
def run_and_r():
    return make_run()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The reports rendered once for the page and browser tests: participant (without and
    with a participant summary and an EEG/MEG-only run) and group."""
    out = tmp_path_factory.mktemp("reports")
    run1, _ = make_run()
    run2, _ = make_run("sub-01_task-rest_run-2", seed=3, full=False)
    participant = render_participant_report([run1, run2], out / "sub-01.html", subject="01")
    summary = make_summary([run1, run2], ephys_only=[make_ephys_only()])
    with_summary = render_participant_report([run1, run2], out / "sub-01-summary.html",
                                             subject="01", summary=summary)
    group = render_group_report(make_group(), out / "group.html")
    return {"participant": participant, "participant_summary": with_summary,
            "summary": summary, "group": group}


# --------------------------------------------------------------------------- figures alone


def _texts(fig):
    out = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    for ax in fig.axes:
        out.append(ax.get_title(loc="left"))
        out.append(ax.get_title())
    return out


def test_parcel_test_r_matches_numpy(run_and_r):
    report, r = run_and_r
    got = figures.parcel_test_r(report.observed, report.predicted, report.test_volumes)
    np.testing.assert_allclose(got, r, atol=1e-12)
    # NaNs are left out pairwise; all-NaN or constant series give NaN
    obs = report.observed.copy()
    obs[0, TEST[:5]] = np.nan
    obs[1, TEST] = np.nan
    obs[2, TEST] = 1.0
    got = figures.parcel_test_r(obs, report.predicted, TEST)
    assert got[0] == pytest.approx(pearson(obs[0, TEST[5:]], report.predicted[0, TEST[5:]]))
    assert np.isnan(got[1]) and np.isnan(got[2])


def test_rank_parcels_and_networks():
    r = np.array([0.1, np.nan, 0.9, -0.3, 0.5])
    assert figures.rank_parcels(r) == {"best": 2, "median": 4, "worst": 3}
    with pytest.raises(ValueError, match="finite"):
        figures.rank_parcels([np.nan, np.nan])
    assert figures.network_of("7Networks_LH_Vis_1") == "Vis"
    assert figures.network_of("7Networks_RH_Sphere3_2") == "Sphere3"
    assert figures.network_of("Background") == "all"
    assert figures.hemisphere_of("7Networks_RH_Vis_1") == "RH"


def test_timeseries_figure_titles_best_median_worst(run_and_r):
    report, r = run_and_r
    ascending = np.argsort(r)
    expected = {"best": ascending[-1], "median": ascending[len(r) // 2], "worst": ascending[0]}
    fig = figures.timeseries_figure(report.observed, report.predicted, report.parcel_names,
                                    TEST, TR_S)
    assert len(fig.axes) == 3
    for ax, (rank, index) in zip(fig.axes, expected.items()):
        title = ax.get_title(loc="left")
        assert title.startswith(rank)
        assert report.parcel_names[index] in title
        assert f"r = {r[index]:.2f}" in title
        lines = ax.get_lines()
        assert len(lines) == 2
        np.testing.assert_allclose(lines[0].get_xdata(), TEST * TR_S)  # time axis in s
        np.testing.assert_allclose(lines[0].get_ydata(), report.observed[index, TEST])
    assert "(s)" in fig.axes[-1].get_xlabel()
    with pytest.raises(ValueError, match="test_volumes"):
        figures.timeseries_figure(report.observed, report.predicted, report.parcel_names,
                                  [N_VOLUMES + 1], TR_S)


def test_split_figure_shades_blocks(run_and_r):
    report, _ = run_and_r
    fig = figures.split_figure(report.observed[0], report.predicted[0], TR_S,
                               train_volumes=TRAIN, validation_volumes=VALIDATION,
                               test_volumes=TEST)
    ax = fig.axes[0]
    labels = [p.get_label() for p in ax.patches]
    assert {"train", "validation", "test"} <= set(labels)
    assert len(ax.get_lines()) == 2


def test_brain_markers_figure(run_and_r):
    report, r = run_and_r
    fig = figures.brain_markers_figure(r, report.centroids_mm, title="test Pearson r",
                                       symmetric=True)
    counts = [len(c.get_offsets()) for ax in fig.axes for c in ax.collections
              if hasattr(c, "get_offsets")]
    assert max(counts) == len(r)  # the top view shows every parcel
    assert any("test Pearson r" in t for t in _texts(fig))
    with pytest.raises(ValueError, match="centroids_mm"):
        figures.brain_markers_figure(r, report.centroids_mm[:5])



@pytest.mark.parametrize("spread", [0.0, 1e-6, 0.05])
def test_brain_markers_figure_nearly_constant(run_and_r, spread):
    """HRFs barely moved from the canonical (a short fit): every time to peak about 5 s. The
    map must still draw (nilearn's colour bar fails on a range below its tick rounding)."""
    report, r = run_and_r
    ttp = np.full(r.size, 5.0)
    ttp[0] += spread
    fig = figures.brain_markers_figure(ttp, report.centroids_mm, title="time to peak (s)",
                                       cmap="viridis")
    assert any("time to peak" in t for t in _texts(fig))


def test_hrf_figure_one_band_per_network(run_and_r):
    report, _ = run_and_r
    fig = figures.hrf_network_figure(report.hrf_time_s, report.hrf_curves, report.parcel_names,
                                     canonical_hrf=report.canonical_hrf,
                                     time_to_peak_s=report.hrf["time_to_peak_s"])
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "Vis (n=10)" in labels and "Default (n=10)" in labels
    canonical = [line for line in ax.get_lines() if line.get_label() == "canonical (SPM)"]
    assert len(canonical) == 1 and canonical[0].get_linestyle() == "--"
    bands = [c for c in ax.collections if type(c).__name__ in ("PolyCollection",
                                                              "FillBetweenPolyCollection")]
    assert len(bands) == 2
    # the median of the Vis curves peaks earlier, as planted
    vis = next(line for line in ax.get_lines() if line.get_label().startswith("Vis"))
    default = next(line for line in ax.get_lines() if line.get_label().startswith("Default"))
    assert vis.get_xdata()[np.argmax(vis.get_ydata())] < \
        default.get_xdata()[np.argmax(default.get_ydata())]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["Vis", "Default"]


def test_attention_figure_bands_with_hz(run_and_r):
    report, _ = run_and_r
    fig = figures.attention_figure(report.attention, BANDS, BAND_RANGES,
                                   source_names=report.source_names)
    ax_bar = fig.axes[0]
    assert len(ax_bar.patches) == len(BANDS)
    np.testing.assert_allclose([p.get_height() for p in ax_bar.patches],
                               report.attention.mean(axis=0))
    ticks = [t.get_text() for t in ax_bar.get_xticklabels()]
    assert ticks[0] == "A3\n0.5–4 Hz" and all("Hz" in t for t in ticks)
    with pytest.raises(ValueError, match="attention"):
        figures.attention_figure(report.attention[:, :3], BANDS)


def test_loss_figure_marks_best_epoch(run_and_r):
    report, _ = run_and_r
    fig = figures.loss_figure(report.history, 25)
    ax = fig.axes[0]
    labels = {line.get_label(): line for line in ax.get_lines()}
    assert {"training", "validation", "best epoch 25"} <= set(labels)
    np.testing.assert_allclose(labels["best epoch 25"].get_xdata(), [25, 25])
    with pytest.raises(ValueError, match="train_loss"):
        figures.loss_figure(pd.DataFrame({"epoch": [1]}))


def test_histogram_and_reverse_and_distribution(run_and_r):
    report, r = run_and_r
    ridge = report.metrics["ridge_pearson_r"].to_numpy()
    fig = figures.r_histogram_figure(r, ridge)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"SAMBA (median {np.median(r):.2f})",
                      f"ridge (canonical HRF) (median {np.median(ridge):.2f})"]
    fig = figures.reverse_figure(report.reverse, BANDS, BAND_RANGES)
    assert len(fig.axes[0].get_xticklabels()) == len(BANDS)
    group = make_group()
    fig = figures.distribution_figure(group.table)
    assert len(fig.axes) == 3
    assert fig.axes[0].collections[0].get_offsets().shape[0] == len(group.table)


def test_figure_to_html_png_and_svg(run_and_r):
    report, _ = run_and_r
    fig = figures.loss_figure(report.history, 25)
    element = figures.figure_to_html(fig, alt='a "loss" <plot>')
    assert element.startswith('<img class="figure" src="data:image/png;base64,')
    data = re.search(r'base64,([^"]+)"', element).group(1)
    assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'alt="a &quot;loss&quot; &lt;plot&gt;"' in element
    assert not fig.axes  # closed and cleared
    svg = figures.figure_to_html(figures.loss_figure(report.history, 25), fmt="svg")
    assert svg.startswith('<svg class="figure"') and svg.rstrip().endswith("</svg>")
    with pytest.raises(ValueError, match="fmt"):
        figures.figure_to_html(figures.loss_figure(report.history), fmt="jpg")


def test_run_r_figure_bars_per_run():
    runs = pd.DataFrame({"run": ["sub-01_run-1", "sub-01_run-2", "sub-01_run-3"],
                         "median_pearson_r": [0.31, 0.12, np.nan],
                         "ridge_median_pearson_r": [0.2, 0.05, 0.1]})
    fig = figures.run_r_figure(runs)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == runs["run"].tolist()
    samba = [p for p in ax.patches if p.get_facecolor()[:3] == pytest.approx(
        tuple(int(figures.PREDICTED_COLOR[i:i + 2], 16) / 255 for i in (1, 3, 5)))]
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == 6 and len(samba) == 3
    np.testing.assert_allclose(widths, [0.31, 0.12, np.nan, 0.2, 0.05, 0.1])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SAMBA", "ridge"]
    # no ridge values: SAMBA bars only
    fig = figures.run_r_figure(runs.assign(ridge_median_pearson_r=np.nan))
    assert len(fig.axes[0].patches) == 3
    with pytest.raises(ValueError, match="median_pearson_r"):
        figures.run_r_figure(runs.drop(columns="median_pearson_r"))
    with pytest.raises(ValueError, match="no rows"):
        figures.run_r_figure(runs.iloc[:0])


def test_predicted_timeseries_figure_first_middle_last():
    run = make_ephys_only()
    m, v = run.predicted.shape
    fig = figures.predicted_timeseries_figure(run.predicted, run.parcel_names, TR_S)
    assert len(fig.axes) == 3
    for ax, index in zip(fig.axes, (0, m // 2, m - 1)):
        assert ax.get_title(loc="left") == run.parcel_names[index]
        (line,) = ax.get_lines()
        np.testing.assert_allclose(line.get_xdata(), np.arange(v) * TR_S)  # time axis in s
        np.testing.assert_allclose(line.get_ydata(), run.predicted[index])
    assert "(s)" in fig.axes[-1].get_xlabel()
    fig = figures.predicted_timeseries_figure(run.predicted[:1], run.parcel_names[:1], TR_S)
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="parcels"):
        figures.predicted_timeseries_figure(run.predicted, run.parcel_names, TR_S, parcels=[m])
    with pytest.raises(ValueError, match="predicted"):
        figures.predicted_timeseries_figure(run.predicted, run.parcel_names[:5], TR_S)


def test_ephys_only_run_validates_shapes():
    run = make_ephys_only()
    with pytest.raises(ValueError, match="predicted"):
        EphysOnlyRun(label="x", predicted=run.predicted[:5], tr_s=TR_S,
                     parcel_names=run.parcel_names)
    with pytest.raises(ValueError, match="tr_s"):
        EphysOnlyRun(label="x", predicted=run.predicted, tr_s=0.0,
                     parcel_names=run.parcel_names)


def test_participant_report_validates_shapes(run_and_r):
    report, _ = run_and_r
    with pytest.raises(ValueError, match="predicted"):
        ParticipantReport(label="x", tr_s=2.0, parcel_names=report.parcel_names,
                          centroids_mm=report.centroids_mm, observed=report.observed,
                          predicted=report.predicted[:, :10], test_volumes=TEST,
                          metrics=report.metrics)


# --------------------------------------------------------------------------- rendered pages


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.headings = []
        self._heading = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3"):
            self._heading = ""

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None


def _check_self_contained(path: Path) -> tuple[str, _Collector]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in text
    parser = _Collector()
    parser.feed(text)
    parser.close()
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert images
    for attrs in images:
        assert attrs["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(attrs["src"].split(",", 1)[1])[:4] == b"\x89PNG"
    for tag, attrs in parser.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http://", "https://", "//")), (tag, value)
        assert tag not in ("script", "link", "iframe"), tag
    assert "http://" not in text and "https://" not in text
    assert FIGURE_ERROR not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;" in text
    assert not list(path.parent.glob(".tmp-*"))  # written atomically
    return text, parser


def test_participant_report_page(rendered, run_and_r):
    _, r = run_and_r
    text, parser = _check_self_contained(rendered["participant"])
    for heading in ("sub-01_task-rest_run-1", "sub-01_task-rest_run-2", "Summary",
                    "Observed vs predicted BOLD on the test block", "Test Pearson r on the brain",
                    "Hemodynamic response functions", "Wavelet attention", "Training",
                    "Comparison with baselines", "Reverse direction: BOLD to band power",
                    "Parameters", "Provenance", "Warnings"):
        assert heading in parser.headings, heading
    assert parser.headings.count("Comparison with baselines") == 1  # run 2 has none
    assert "samba-bids report: sub-01" in parser.headings
    assert "source_reconstruction.method" in text and "dSPM" in text
    assert f"{np.median(r):.3f}" in text  # summary median r
    # run 1: time series, split, r map, histogram, HRF, ttp map, attention, loss, reverse
    # run 2: the same without attention and reverse
    assert sum(tag == "img" for tag, _ in parser.tags) == 9 + 7
    ids = [attrs["id"] for _, attrs in parser.tags if "id" in attrs]
    assert len(ids) == len(set(ids))
    hrefs = [attrs["href"] for tag, attrs in parser.tags if tag == "a"]
    assert hrefs and all(h[1:] in ids for h in hrefs)


def _section(text: str, section_id: str) -> str:
    start = text.index(f'id="{section_id}"')
    return text[start:text.index("</section>", start)]


def test_participant_report_with_summary_and_ephys_only(rendered):
    text, parser = _check_self_contained(rendered["participant_summary"])
    summary = rendered["summary"]
    assert "Participant summary" in parser.headings
    assert f"{EPHYS_LABEL} (no observed BOLD)" in parser.headings
    # the summary comes first, the EEG/MEG-only run after the paired runs
    h2 = [h for h in parser.headings if h != "samba-bids report: sub-01"]
    assert h2.index("Participant summary") == 0
    assert h2.index(f"{EPHYS_LABEL} (no observed BOLD)") > h2.index("sub-01_task-rest_run-2")
    section = _section(text, "participant-summary")
    assert "sub-01_desc-samba_model.pt" in section and "by run" in section
    for row in summary.runs.itertuples():
        assert f"<td>{row.run}</td>" in section
        for value in (row.median_pearson_r, row.ridge_median_pearson_r):
            assert f'<td class="num">{format_value(value)}</td>' in section
    assert 'alt="median test r per run"' in section
    assert 'alt="participant model time to peak map"' in section
    ephys = _section(text, EPHYS_LABEL)
    assert "No BOLD was recorded for this run" in ephys
    assert "volume triggers &#x27;Volume&#x27;" in ephys
    assert f'alt="{EPHYS_LABEL} predicted time series"' in ephys
    # paired runs as before (9 + 7) + summary: r per run, ttp map + EEG/MEG-only: time series
    assert sum(tag == "img" for tag, _ in parser.tags) == 9 + 7 + 2 + 1
    ids = [attrs["id"] for _, attrs in parser.tags if "id" in attrs]
    assert len(ids) == len(set(ids))
    nav = [(attrs["href"], label) for (tag, attrs), label in
           zip([t for t in parser.tags if t[0] == "a"],
               re.findall(r'<a href="[^"]*">([^<]*)</a>', text))]
    hrefs = [h for h, _ in nav]
    assert hrefs == ["#participant-summary", "#sub-01_task-rest_run-1",
                     "#sub-01_task-rest_run-2", f"#{EPHYS_LABEL}"]
    assert nav[0][1] == "Summary"
    assert all(h[1:] in ids for h in hrefs)
    assert "2 paired runs, 1 EEG/MEG-only run ·" in text


def _without_time(text: str) -> str:
    return re.sub(r" on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\.", "", text)


def test_participant_report_summary_none_unchanged():
    run, _ = make_run("sub-01_task-rest_run-2", seed=3, full=False)
    before = participant_report_html([run], subject="01", methods="Methods text.")
    after = participant_report_html([run], subject="01", methods="Methods text.",
                                    summary=None)
    assert _without_time(after) == _without_time(before)
    assert "participant-summary" not in after and "no observed BOLD" not in after
    assert "<p>1 run ·" in after


def test_participant_summary_without_hrf_or_paired_runs(caplog):
    ephys = [make_ephys_only(), make_ephys_only("sub-01_task-rest_run-5", seed=6)]
    summary = make_summary([], ephys_only=ephys, with_hrf=False)
    text = participant_report_html([], subject="sub-01", summary=summary)
    assert FIGURE_ERROR not in text
    assert not any("failed" in rec.getMessage() for rec in caplog.records)
    section = _section(text, "participant-summary")
    assert "No paired runs" in section and "sub-01_desc-samba_model.pt" in section
    assert "time to peak" not in section and "<img" not in section
    assert "No runs of this participant were translated" not in text
    for run in ephys:
        assert f"{run.label} (no observed BOLD)" in _section(text, run.label)
        assert f'<a href="#{run.label}">' in text
    assert text.count("<img") == 2
    assert "0 paired runs, 2 EEG/MEG-only runs ·" in text


def test_group_report_page(rendered):
    _, parser = _check_self_contained(rendered["group"])
    for heading in ("Summary", "Runs", "Distributions across participants", "Group maps",
                    "Mean test Pearson r", "SD of test Pearson r", "Mean time to peak (s)",
                    "SD of time to peak (s)", "Parameters", "Warnings"):
        assert heading in parser.headings, heading
    assert sum(tag == "img" for tag, _ in parser.tags) == 5


def test_empty_participant_report_and_failed_figure(tmp_path, run_and_r, caplog):
    path = render_participant_report([], tmp_path / "sub-02.html", subject="sub-02")
    assert "No runs of this participant" in path.read_text()
    report, _ = run_and_r
    broken = ParticipantReport(label="broken", tr_s=2.0, parcel_names=report.parcel_names,
                               centroids_mm=report.centroids_mm, observed=report.observed,
                               predicted=report.predicted, test_volumes=TEST,
                               metrics=report.metrics, history=pd.DataFrame({"epoch": [1, 2]}))
    text = render_participant_report([broken], tmp_path / "sub-03.html",
                                     subject="03").read_text()
    assert FIGURE_ERROR in text and "train_loss" in text
    assert any("failed" in rec.getMessage() for rec in caplog.records)


def test_import_does_not_load_matplotlib():
    import subprocess
    import sys

    code = ("import sys, samba_bids.reports; "
            "sys.exit(int('matplotlib' in sys.modules or 'nilearn' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_figures_with_unwritable_home(tmp_path):
    """No writable home (containers run as arbitrary users): a private MPLCONFIGDIR is used."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path / "missing-home")
    code = ("import os, pandas as pd; from samba_bids.reports import figures; "
            "h = pd.DataFrame({'epoch': [1, 2], 'train_loss': [1.0, 0.5]}); "
            "assert figures.figure_to_html(figures.loss_figure(h, 2)).startswith('<img'); "
            "print(os.environ['MPLCONFIGDIR'])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "samba-bids-mpl-" in done.stdout
    assert "temporary cache directory" not in done.stderr
    assert not (tmp_path / "missing-home").exists()


# --------------------------------------------------------------------------- headless Chromium


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    user_data = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.mark.parametrize("which", ["participant", "participant_summary", "group"])
def test_report_in_headless_chromium(browser_context, rendered, which, tmp_path):
    page = browser_context.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(f"pageerror: {err}"))
    page.on("request", lambda req: errors.append(f"request: {req.url}")
            if not req.url.startswith(("file:", "data:")) else None)
    page.goto(rendered[which].resolve().as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth,"
                           " i.naturalHeight])")
    assert images and all(c and w > 0 and h > 0 for c, w, h in images), images
    headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.innerText)")
    assert headings
    shot = tmp_path / f"{which}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:4] == b"\x89PNG"
    keep = os.environ.get("SAMBA_BIDS_REPORT_SCREENSHOTS")  # a folder, for looking at them
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / f"report_{which}.png")
    page.close()
    assert not errors, errors


def test_run_translated_by_a_reused_model_has_a_section(tmp_path, run_and_r, caplog):
    """--models: a run scored by a model trained elsewhere (no history, no baseline, no
    training blocks) gets its section: series, scores and HRFs, and no figure fails."""
    import dataclasses

    report, _ = run_and_r
    reused = dataclasses.replace(report, label="sub-01_task-rest_run-9",
                                 train_volumes=np.array([], dtype=int),
                                 validation_volumes=np.array([], dtype=int),
                                 history=None, best_epoch=None, comparison=None,
                                 attention=None, reverse=None, warnings=[],
                                 provenance={"Model (reused, not trained here)":
                                             "bids:models:sub-01/model/x.pt"})
    with caplog.at_level("WARNING"):
        text = render_participant_report([reused], tmp_path / "sub-01.html",
                                         subject="01").read_text()
    assert FIGURE_ERROR not in text and not any("failed" in r.getMessage()
                                                 for r in caplog.records)
    assert "sub-01_task-rest_run-9" in text and "bids:models:sub-01/model/x.pt" in text
    assert "loss curves" not in text and "Loss per epoch" not in text
