"""Figure builders and projections, checked through fig.to_dict(): no browser, no model weights."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from mtl_core.serving.projection import UMAP_MIN_POINTS, CosineUMAP, cosine_distances, pca, project
from mtl_core.serving.similarity import cluster_order, clustered, cosine_similarity
from mtl_core.tasks.definitions import SENTIMENT
from ui.figures import (
    CELL_TEXT_MAX,
    NUMBER_TICKS,
    TICK_LABELS_MAX,
    Background,
    colour_map,
    projection_scatter,
    similarity_heatmap,
    tick_label,
)

HTML = '<img src=x onerror="alert(1)"><b>bold</b>'


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


def two_groups(n_per_group: int = 4, dim: int = 16) -> tuple[np.ndarray, list[int]]:
    """Interleaved members of two tight groups (A B A B ...); returns embeddings and group ids."""
    rng = np.random.default_rng(1)
    centres = np.eye(dim)[:2]
    groups = [i % 2 for i in range(2 * n_per_group)]
    x = np.stack([centres[g] + 0.05 * rng.normal(size=dim) for g in groups])
    return x, groups


def heatmap_trace(fig) -> dict:
    trace = fig.to_dict()["data"][0]
    trace["z"] = fig.data[0].z  # to_dict() base64-encodes numeric arrays
    return trace


# ---- similarity -----------------------------------------------------------------------------------

def test_cosine_similarity_is_symmetric_with_unit_diagonal_and_clipped():
    sim = cosine_similarity(unit_rows(5) * 3.0)  # scale must not matter
    assert sim.shape == (5, 5)
    np.testing.assert_allclose(sim, sim.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)
    assert sim.min() >= -1.0 and sim.max() <= 1.0


@pytest.mark.parametrize("n", [1, 2, 3])
def test_heatmap_small_n_has_fixed_range_values_and_height(n):
    texts = [f"sentence number {i}" for i in range(n)]
    fig = similarity_heatmap(unit_rows(n), texts, height=432)
    trace = heatmap_trace(fig)
    assert np.asarray(trace["z"]).shape == (n, n)
    assert (trace["zmin"], trace["zmax"]) == (-1.0, 1.0)
    assert trace["texttemplate"] == "%{z:.2f}"  # values printed in the cells for few sentences
    assert fig.layout.height == 432
    assert "-1…1" in fig.layout.title.text


def test_heatmap_hides_cell_values_above_threshold():
    n = CELL_TEXT_MAX + 1
    trace = heatmap_trace(similarity_heatmap(unit_rows(n), [f"s{i}" for i in range(n)]))
    assert "texttemplate" not in trace


def test_heatmap_ticks_are_short_and_hover_holds_full_escaped_sentence():
    texts = ["a very long sentence with many words in it, far more than a tick label can show", HTML]
    fig = similarity_heatmap(unit_rows(2), texts)
    layout = fig.to_dict()["layout"]
    ticks = layout["xaxis"]["ticktext"]
    assert ticks[0].startswith("1: a very long") and ticks[0].endswith("…") and len(ticks[0]) <= 28
    assert "<img" not in ticks[1] and "&lt;img" in ticks[1]
    names = heatmap_trace(fig)["x"]
    assert names[0].replace("<br>", " ").startswith("1: " + texts[0])  # wrapped, not cut
    assert "&lt;b&gt;bold&lt;/b&gt;" in names[1] and "<b>" not in names[1]
    assert layout["yaxis"]["ticktext"] == ticks


def test_heatmap_keeps_identical_sentences_apart():
    fig = similarity_heatmap(np.repeat(unit_rows(1), 3, axis=0), ["same"] * 3, order="cluster")
    trace = heatmap_trace(fig)
    assert len(set(trace["x"])) == 3  # unique categories, or plotly would merge the rows
    np.testing.assert_allclose(trace["z"], 1.0, atol=1e-6)


def test_cluster_order_groups_similar_sentences_into_blocks():
    x, groups = two_groups()
    order = cluster_order(cosine_similarity(x))
    assert sorted(order.tolist()) == list(range(len(groups)))
    ordered = [groups[i] for i in order]
    assert ordered in ([0] * 4 + [1] * 4, [1] * 4 + [0] * 4)
    fig = similarity_heatmap(x, [f"s{i}" for i in range(8)], order="cluster")
    assert [t.split(":")[0] for t in fig.layout.xaxis.ticktext] == [str(i + 1) for i in order]


def test_heatmap_input_order_and_bad_arguments():
    fig = similarity_heatmap(unit_rows(4), ["a", "b", "c", "d"])
    assert list(fig.layout.xaxis.ticktext) == ["1: a", "2: b", "3: c", "4: d"]
    with pytest.raises(ValueError, match="order"):
        similarity_heatmap(unit_rows(2), ["a", "b"], order="random")
    with pytest.raises(ValueError, match="one embedding per sentence"):
        similarity_heatmap(unit_rows(3), ["a", "b"])


def test_tick_label_is_one_based_and_capped():
    assert tick_label(0, "hi") == "1: hi"
    assert tick_label(9, "x" * 100).startswith("10: xxx") and len(tick_label(9, "x" * 100)) <= 28


# ---- projection -----------------------------------------------------------------------------------

def test_project_one_sentence_and_identical_sentences_do_not_crash():
    single = project(unit_rows(1))
    assert single.coords.shape == (1, 2) and "one sentence" in single.method
    same = project(np.repeat(unit_rows(1), 12, axis=0), 3)
    assert same.coords.shape == (12, 3) and "identical" in same.method
    assert np.all(same.coords == 0)


@pytest.mark.parametrize("n", [2, 3, UMAP_MIN_POINTS - 1])
def test_project_few_sentences_uses_pca_and_says_so(n):
    result = project(unit_rows(n), 3)
    assert result.coords.shape == (n, 3)
    assert result.method.startswith("PCA") and f"{n} distinct" in result.method
    assert np.isfinite(result.coords).all()


def test_pca_preserves_distances_of_two_points():
    x = unit_rows(2)
    coords = pca(x, 2)
    assert coords.shape == (2, 2) and np.all(coords[:, 1] == 0)  # rank 1: second axis padded
    np.testing.assert_allclose(np.linalg.norm(coords[0] - coords[1]), np.linalg.norm(x[0] - x[1]), rtol=1e-5)


def test_project_falls_back_to_pca_while_umap_warms_up():
    result = project(unit_rows(20), 2, umap_ready=False)
    assert "warming up" in result.method and result.coords.shape == (20, 2)


def test_project_uses_reproducible_umap_for_enough_sentences():
    x = unit_rows(12)
    first, second = project(x, 2), project(x, 2)
    assert first.method.startswith("UMAP") and "n_neighbors=11" in first.method
    np.testing.assert_allclose(first.coords, second.coords)
    assert project(x, 3).coords.shape == (12, 3)


def test_cosine_umap_places_new_points_beside_their_cluster():
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(3, 16)))

    def points(k: int) -> np.ndarray:
        return unit(np.repeat(centres, k, axis=0) + 0.05 * rng.normal(size=(3 * k, 16)))

    fitted, new = points(20), points(3)  # cluster of row i: i // k
    assert np.allclose(cosine_distances(new, fitted), cdist(new, fitted, "cosine"), atol=1e-9)
    model = CosineUMAP(len(fitted), 2).fit(fitted)
    np.testing.assert_allclose(model.embedding_, CosineUMAP(len(fitted), 2).fit(fitted).embedding_)  # seeded
    cluster_centres = model.embedding_.reshape(3, 20, 2).mean(axis=1)
    placed = model.transform(new)
    nearest = np.argmin(np.linalg.norm(placed[:, None] - cluster_centres[None], axis=2), axis=1)
    assert nearest.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_project_rejects_bad_shapes():
    with pytest.raises(ValueError):
        project(np.zeros((0, 4)))
    with pytest.raises(ValueError):
        project(unit_rows(3), 4)


# ---- scatter --------------------------------------------------------------------------------------

def test_scatter_has_a_trace_per_label_with_escaped_hover():
    coords = np.arange(8, dtype=float).reshape(4, 2)
    fig = projection_scatter(coords, ["a", HTML, "c", "d"], ["Positive", "Negative", "Positive", "Neutral"],
                             ["intent: x", "intent: <y>", "z", "w"], method="PCA (test)", height=345,
                             colour_map=colour_map(["negative", "neutral", "positive"]))
    data = fig.to_dict()["data"]
    assert [t["name"] for t in data] == ["Positive", "Negative", "Neutral"]  # most frequent first
    assert all(t["type"] == "scatter" for t in data)
    assert data[0]["marker"]["color"] == SENTIMENT.colours["positive"]  # the task's colour for the label's meaning
    hover = data[1]["text"][0]
    assert "&lt;img" in hover and "<img" not in hover and "intent: &lt;y&gt;" in hover
    assert fig.layout.height == 345 and "PCA (test)" in fig.layout.title.text


def test_scatter_2d_stays_svg_at_the_largest_map_and_3d_reference_background():
    n = 2000
    coords = np.random.default_rng(0).normal(size=(n, 3))
    big_ref = Background(np.zeros((1000, 2)), ["r"] * 1000, ["a"] * 1000)
    fig2 = projection_scatter(coords, ["s"] * n, ["a"] * n, method="m", dims=2, background=big_ref)
    assert {t.type for t in fig2.data} == {"scatter"}  # WebGL set-up cost more than SVG drawing (figures.scatter_trace)
    ref = Background(np.zeros((3, 3)), ["[intent: X] r1", "r2", "r3"], ["a", None, None])
    fig3 = projection_scatter(coords[:2], ["s", "t"], ["a", "b"], method="m", dims=3, background=ref)
    types = [t.type for t in fig3.data]
    assert types == ["scatter3d"] * 4  # two reference traces (coloured "a", uncoloured), then a and b
    assert not fig3.data[0].showlegend and fig3.data[0].text[0] == "r2" and fig3.data[1].text[0] == "[intent: X] r1"
    scene = fig3.to_dict()["layout"]["scene"]
    assert scene["xaxis"]["showticklabels"] is False and scene["xaxis"]["showbackground"] is True


# ---- views at 10, 300 and 2,000 sentences ------------------------------------------------------------

@pytest.mark.parametrize("n", [10, 300, 2000])
def test_heatmap_tick_labels_only_while_readable(n):
    texts = [f"sentence number {i} with a few words" for i in range(n)]
    fig = similarity_heatmap(unit_rows(n), texts, order="cluster" if n <= 300 else "input")
    ticks = fig.layout.xaxis.ticktext
    if n <= TICK_LABELS_MAX:
        assert len(ticks) == n and all(": sentence number" in t for t in ticks)
    else:
        assert len(ticks) <= NUMBER_TICKS and all(t.isdigit() for t in ticks)  # row numbers only
    names = heatmap_trace(fig)["x"]
    assert len(names) == n and "sentence number" in names[-1]  # the hover still holds every sentence


def test_clustered_heatmap_outlines_its_groups():
    x, groups = two_groups()
    fig = similarity_heatmap(x, [f"s{i}" for i in range(8)], order="cluster")
    blocks = [(sh.x0 + 0.5, sh.x1 - 0.5) for sh in fig.layout.shapes]
    assert sorted(blocks) == [(0, 3), (4, 7)] and "2 outlined groups" in fig.layout.title.text
    order, blocks = clustered(cosine_similarity(x[:2]))  # under 3 sentences: no clustering, no blocks
    assert order.tolist() == [0, 1] and blocks == []


@pytest.mark.parametrize("n", [10, 300, 2000])
def test_map_legend_lists_groups_not_every_label_and_reference_points_are_coloured(n):
    from mtl_core.tasks.intent_groups import GROUP_OF, INTENT_GROUPS
    from ui.figures import OUT_OF_SCOPE

    rng = np.random.default_rng(0)
    intents = [i for group in INTENT_GROUPS.values() for i in group]
    labels = [OUT_OF_SCOPE if i % 17 == 0 else GROUP_OF[intents[i % 77]] for i in range(n)]
    ref_labels = [GROUP_OF[intents[i % 77]] for i in range(616)] + [None] * 390
    centres = {group: np.array([0.0, 10.0 * i]) for i, group in enumerate(INTENT_GROUPS)}  # a column: labels apart
    ref_coords = np.stack([centres[g] if g else np.zeros(2) for g in ref_labels]) + rng.normal(size=(1006, 2))
    background = Background(ref_coords, ["r"] * 1006, ref_labels)
    fig = projection_scatter(rng.normal(size=(n, 2)), ["s"] * n, labels, method="m", colour_map=colour_map(intents),
                             background=background, highlight=rng.normal(size=(3, 2)))
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert len(legend) <= len(INTENT_GROUPS) + 2  # the groups, out of scope, search results
    assert set(INTENT_GROUPS) <= set(legend)  # every colour on the map, the reference points' included
    mine = [t for t in fig.data if t.showlegend is not False and t.text is not None and len(t.text)]
    reference = [t for t in fig.data if t.name.startswith("reference: ")]
    assert min(t.marker.size for t in mine) >= 2 * max(t.marker.size for t in reference)  # yours stand out
    assert "search results" in legend and fig.layout.legend.orientation == "h"  # under the plot, never beside
    coloured = [t for t in fig.data if t.name.startswith("reference: ") and t.name != "reference: other"]
    assert len(coloured) == len(INTENT_GROUPS) and all("rgba" in t.marker.color for t in coloured)
    assert {a.text.strip("<b/>") for a in fig.layout.annotations} == set(INTENT_GROUPS)  # region labels


def test_no_intent_group_is_coloured_like_out_of_scope():
    from mtl_core.tasks.intent_groups import INTENT_GROUPS
    from ui.figures import OUT_OF_SCOPE

    colours = colour_map([i for group in INTENT_GROUPS.values() for i in group])
    groups = [c for label, c in colours.items() if label != OUT_OF_SCOPE]
    assert len(set(groups)) == len(groups) == 10
    for colour in groups:  # no grey: the spread between the channels of a grey is ~0
        channels = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert max(channels) - min(channels) > 40, colour


def test_region_labels_apart_along_one_axis_are_both_drawn():
    rng = np.random.default_rng(0)
    coords = np.r_[rng.normal([0, 0], 0.01, (10, 2)), rng.normal([0, 5], 0.01, (10, 2)), [[10, 10]]]
    background = Background(coords, ["r"] * 21, ["top"] * 10 + ["under"] * 10 + [None])
    fig = projection_scatter(np.zeros((1, 2)), ["a"], ["top"], method="m", background=background)
    assert sorted(a.text for a in fig.layout.annotations) == ["<b>top</b>", "<b>under</b>"]


def test_region_labels_that_would_overlap_are_left_out():
    background = Background(np.zeros((20, 2)) + np.r_[[[0, 0]] * 10, [[0.01, 0]] * 10], ["r"] * 20,
                            ["big"] * 10 + ["small"] * 10)
    background.coords[0] = [5, 5]  # give the map an extent
    fig = projection_scatter(np.zeros((2, 2)), ["a", "b"], ["big", "small"], method="m", background=background)
    assert [a.text for a in fig.layout.annotations] == ["<b>big</b>"]


def test_every_intent_has_exactly_one_group():
    import json

    from mtl_core.serving.reference import from_csv
    from mtl_core.settings import Settings
    from mtl_core.tasks.intent_groups import GROUP_OF, INTENT_GROUPS

    path = Settings.from_env().training_data_dir / "intent" / "labels.json"
    grouped = [i for group in INTENT_GROUPS.values() for i in group]
    assert len(grouped) == len(set(grouped)) == 77 and 8 <= len(INTENT_GROUPS) <= 12
    if path.is_file():
        assert set(json.loads(path.read_text())) == set(GROUP_OF)
    refset = from_csv()
    shipped = {label for source, label in zip(refset.sources, refset.labels, strict=True) if source == "intent"}
    assert shipped == set(GROUP_OF)  # the shipped reference sentences use the same 77 ids


def test_scatter_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        projection_scatter(np.zeros((2, 2)), ["a"], ["x", "y"], method="m")
    with pytest.raises(ValueError, match="dims"):
        projection_scatter(np.zeros((2, 2)), ["a", "b"], ["x", "y"], method="m", dims=3)
