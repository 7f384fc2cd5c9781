"""AS-norm shipped with the model, on real digits: ``tcdml adapt train`` -> ``adapt apply`` (the cohort and
the calibration set) -> ``tcdml calibrate --asnorm`` -> ``tcdml export --asnorm`` -> ``load_matcher``, whose
scores, decisions and search are those of the Python path (``tcdml.posthoc.ASNormModel``); and every way of
pairing a threshold with the wrong cohort or model is one line, nothing written."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.deploy import load_matcher
from tcdml.deploy.asnorm import COHORT_FILE
from tcdml.deploy.manifest import MANIFEST_NAME, sha256_file
from tcdml.errors import TcdmlInputError
from tcdml.io.embeddings_file import load_embeddings_file, save_embeddings_file
from tcdml.posthoc import fit_asnorm
from tests.badinput.harness import expect_clean_failure

TOP_K = 20
FAST = ["--epochs", "2", "--batch-size", "48", "--hidden", "32", "--no-progress", "--format", "json"]


def _cli(argv: list, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main([str(arg) for arg in argv]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, digits) -> dict[str, Path]:
    """An adapter trained on digits 0-4, whose embeddings of them are the AS-norm cohort (as docs/posthoc.md
    advises: the training set); a threshold for FAR 5 % on AS-norm scores of digits 5-7; the export carrying
    both; digits 8-9 to serve."""
    x, y = digits
    root = tmp_path_factory.mktemp("asnorm")
    seen, calib, held = y < 5, (y >= 5) & (y < 8), y >= 8
    files = {
        "train": save_embeddings_file(root / "train.npz", x[seen], y[seen]),
        "calib_in": save_embeddings_file(root / "calib_in.npz", x[calib], y[calib]),
        "test_in": save_embeddings_file(root / "test_in.npz", x[held], y[held]),
    }
    commands = [
        ["adapt", "train", files["train"], "-o", root / "adapter", *FAST],
        [
            "adapt",
            "apply",
            root / "adapter",
            files["train"],
            "-o",
            root / "cohort.npz",
            "--format",
            "json",
        ],
        ["adapt", "apply", root / "adapter", files["calib_in"], "-o", root / "calib.npz", "--format", "json"],
        ["adapt", "apply", root / "adapter", files["test_in"], "-o", root / "test.npz", "--format", "json"],
        [
            "calibrate",
            root / "calib.npz",
            "--target-far",
            "0.05",
            "--asnorm",
            root / "cohort.npz",
            "--top-k",
            str(TOP_K),
            "-o",
            root / "t.json",
            "--format",
            "json",
        ],
        [
            "calibrate",
            root / "calib.npz",
            "--target-far",
            "0.05",
            "-o",
            root / "cosine.json",
            "--format",
            "json",
        ],
        [
            "export",
            root / "adapter",
            "--calibration",
            root / "t.json",
            "--asnorm",
            root / "cohort.npz",
            "-o",
            root / "served",
        ],
    ]
    for argv in commands:
        assert main([str(arg) for arg in argv]) == 0, argv
    return {**files, "root": root, **{name: root / f"{name}.npz" for name in ("cohort", "calib", "test")}}


def test_calibrate_records_the_cohort_and_meets_the_target(shipped) -> None:
    record = json.loads((shipped["root"] / "t.json").read_text())
    assert record["scores"] == {
        "kind": "asnorm",
        "top_k": TOP_K,
        "cohort_file": "cohort.npz",
        "cohort_size": len(load_embeddings_file(shipped["cohort"]).labels),
        "cohort_sha256": sha256_file(shipped["cohort"]),
    }
    calib = load_embeddings_file(shipped["calib"])
    model = fit_asnorm(load_embeddings_file(shipped["cohort"]).embeddings, TOP_K)
    scores = model.score_matrix(calib.embeddings)
    upper = np.triu(np.ones(scores.shape, dtype=bool), k=1)
    same = calib.labels[:, None] == calib.labels[None, :]
    negatives, positives = scores[upper & ~same], scores[upper & same]
    threshold = record["threshold"]
    assert record["mode"] == "exact" and record["far"] <= 0.05
    assert abs((negatives >= threshold).mean() - record["far"]) < 1e-9
    assert abs((positives < threshold).mean() - record["frr"]) < 1e-9
    assert (negatives >= np.nextafter(threshold, -np.inf) - 1e-9).mean() > 0.05 - 1e-3  # the smallest such t


def test_served_scores_decisions_and_search_are_the_python_paths(shipped) -> None:
    matcher = load_matcher(shipped["root"] / "served")
    assert matcher.scores == "asnorm"
    manifest = matcher.manifest.to_dict()
    assert manifest["scores"]["cohort"] == COHORT_FILE and manifest["scores"]["top_k"] == TOP_K
    assert "AS-norm" in manifest["similarity"]
    test = load_embeddings_file(shipped["test"])
    model = fit_asnorm(load_embeddings_file(shipped["cohort"]).embeddings, TOP_K)
    raw = load_embeddings_file(shipped["test_in"]).embeddings
    embedded = matcher.embed(raw)
    np.testing.assert_allclose(embedded, test.embeddings, atol=1e-5)

    a, b = embedded[:150], embedded[150:300]
    accept, scores = matcher.match(raw[:150], raw[150:300])
    expected = model.scores(a, b)
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    clear = np.abs(expected - matcher.threshold) > 1e-3
    np.testing.assert_array_equal(accept[clear], (expected >= matcher.threshold)[clear])
    assert 0 < accept.mean() < 1

    queries, gallery = embedded[:60], embedded[60:]
    found = matcher.search(queries, gallery, embedded=True)
    full = model.score_matrix(queries, gallery)
    for i, hits in enumerate(found):
        expected_hits = np.flatnonzero(full[i] >= matcher.threshold)
        margin = np.abs(full[i] - matcher.threshold) > 1e-3
        assert set(hits.indices.tolist()) & set(np.flatnonzero(margin)) == set(expected_hits) & set(
            np.flatnonzero(margin)
        )
        np.testing.assert_allclose(hits.similarities, full[i, hits.indices], atol=1e-4)
        assert np.all(np.diff(hits.similarities) <= 0)
    assert sum(len(hits.indices) for hits in found) > 0
    pairs = matcher.match(
        np.repeat(queries[:3], len(gallery), axis=0), np.tile(gallery, (3, 1)), embedded=True
    )
    for i in range(3):  # search and match agree on every pair
        accepted = np.flatnonzero(pairs.accept[i * len(gallery) : (i + 1) * len(gallery)])
        assert sorted(found[i].indices.tolist()) == accepted.tolist()
    with pytest.raises(TcdmlInputError, match="faiss' cannot search AS-norm"):
        matcher.search(queries, gallery, embedded=True, backend="faiss")


def test_a_threshold_with_the_wrong_cohort_is_one_line_and_writes_nothing(shipped, digits, capsys) -> None:
    root = shipped["root"]
    narrow = save_embeddings_file(root / "narrow.npz", digits[0][:100, :32], digits[1][:100])
    out = root / "refused"
    export = ["export", str(root / "adapter"), "-o", str(out)]
    cases = [
        (["--calibration", str(root / "t.json")], "give that cohort file (--asnorm)"),
        (
            ["--calibration", str(root / "t.json"), "--asnorm", str(shipped["calib"])],
            "differs from the cohort",
        ),
        (["--calibration", str(root / "cosine.json"), "--asnorm", str(shipped["cohort"])], "on cosine"),
    ]
    for extra, message in cases:
        expect_clean_failure([*export, *extra], capsys, watched=[out], contains=message)
    calibrate = ["calibrate", str(shipped["calib"]), "--target-far", "0.05", "-o", str(out)]
    bad = [
        (["--top-k", "5"], "--top-k=5: only with --asnorm"),
        (["--asnorm", str(narrow)], "32-d ones (another model's?)"),
        (["--asnorm", str(shipped["cohort"]), "--top-k", "100000"], "cohort.npz: asnorm: top_k=100000"),
        (["--asnorm", str(root / "missing.npz")], "missing.npz: no such file"),
        (["--asnorm", str(shipped["cohort"]), "--bins", "64"], "--bins=64: AS-norm scores are taken exactly"),
    ]
    for extra, message in bad:
        expect_clean_failure([*calibrate, *extra], capsys, watched=[out], contains=message)


def _copy(shipped, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shipped["root"] / "served", tmp_path / "served"))


def test_a_changed_cohort_or_scores_section_is_refused_at_load(shipped, tmp_path: Path) -> None:
    folder = _copy(shipped, tmp_path)
    cohort = np.load(folder / COHORT_FILE)
    np.save(folder / COHORT_FILE, cohort[::-1].copy())  # same size, other bytes
    with pytest.raises(TcdmlInputError, match=f"{COHORT_FILE}: sha256 .* differs"):
        load_matcher(folder)
    shutil.copyfile(shipped["root"] / "served" / COHORT_FILE, folder / COHORT_FILE)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    edits = [
        ({"cohort_size": len(cohort) - 1}, r"shape \(\d+, \d+\), expected a float \(\d+, \d+\) array"),
        ({"kind": "znorm"}, "malformed manifest: scores.kind='znorm'"),
        ({"top_k": 1}, "malformed manifest: scores.top_k=1"),
        ({"cohort": "model.onnx/../x"}, "malformed manifest: scores.cohort="),
    ]
    for change, message in edits:
        edited = {**manifest, "scores": {**manifest["scores"], **change}}
        (folder / MANIFEST_NAME).write_text(json.dumps(edited))
        with pytest.raises(TcdmlInputError, match=message):
            load_matcher(folder)
    (folder / MANIFEST_NAME).write_text(json.dumps({**manifest, "threshold": 7.5}))
    assert load_matcher(folder).threshold == 7.5  # scores: a threshold outside [-1, 1] is a normalised score
    plain = {key: value for key, value in manifest.items() if key != "scores"}
    (folder / MANIFEST_NAME).write_text(json.dumps({**plain, "threshold": 7.5}))
    with pytest.raises(TcdmlInputError, match=r"threshold=7.5, expected a number in \[-1, 1\]"):
        load_matcher(folder)


def test_evaluate_asnorm_is_the_score_matrix_evaluation(shipped, capsys) -> None:
    from tcdml.posthoc.evaluate import evaluate_scores

    calib = load_embeddings_file(shipped["calib"])
    model = fit_asnorm(load_embeddings_file(shipped["cohort"]).embeddings, TOP_K)
    argv = ["evaluate", shipped["calib"], "--asnorm", shipped["cohort"], "--top-k", TOP_K, "--bootstrap", 50]
    printed = _cli([*argv, "--format", "json"], capsys)
    expected = evaluate_scores(model.score_matrix(calib.embeddings), calib.labels).to_dict()
    for key in ("recall@1", "map@r", "opis", "eps_opis", "auc", "eer"):
        assert printed[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    cosine = _cli(["evaluate", shipped["calib"], "--format", "json", "--bootstrap", 50], capsys)
    assert printed["opis"] != pytest.approx(cosine["opis"])  # the scores, not the cosines, were evaluated
    out = shipped["root"] / "never.json"
    expect_clean_failure(
        ["evaluate", str(shipped["calib"]), "--top-k", "5", "-o", str(out)],
        capsys,
        watched=[out],
        contains="--top-k=5",
    )


def test_score_norm_remembers_the_last_arrays_by_content() -> None:
    from tcdml.deploy.asnorm import STATS_MEMO, ScoreNorm, side_stats

    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, 8))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    norm = ScoreNorm(unit(50), 5)
    gallery, queries = unit(30), [unit(4) for _ in range(3)]
    first = norm.stats(gallery)
    for q in queries:  # new queries each time: the gallery's statistics stay remembered
        norm.stats(q)
        assert norm.stats(gallery.copy()) is first  # same content, another array
    assert len(norm._memo) == STATS_MEMO
    changed = gallery.copy()
    changed[0, 0] += 1e-3
    fresh = norm.stats(changed)
    assert fresh is not first
    for got, expected in zip(fresh, side_stats(changed, norm.cohort, 5), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_too_many_samples_for_a_score_matrix_are_refused_before_it_is_built() -> None:
    from tcdml.posthoc.calibrate import calibrate_asnorm
    from tcdml.posthoc.evaluate import MAX_SAMPLES

    model = fit_asnorm(np.eye(4)[[0, 1, 2, 3, 0, 1]] + 0.1, top_k=2)
    too_many = np.broadcast_to(np.ones(4), (MAX_SAMPLES + 1, 4))  # no memory: a view of one row
    with pytest.raises(TcdmlInputError, match=f"embeddings: {MAX_SAMPLES + 1:,} samples; a score matrix"):
        calibrate_asnorm(model, too_many, np.zeros(MAX_SAMPLES + 1, dtype=int), target_far=0.01)


def test_calibrating_on_the_cohort_itself_is_warned_about(shipped) -> None:
    from tcdml.posthoc.calibrate import calibrate_asnorm

    cohort = load_embeddings_file(shipped["cohort"])
    model = fit_asnorm(cohort.embeddings, TOP_K)
    with pytest.warns(
        UserWarning, match=r"^901 of 901 calibration embeddings are also in the AS-norm cohort"
    ):
        calibrate_asnorm(model, cohort.embeddings, cohort.labels, target_far=0.05)
    calib = load_embeddings_file(shipped["calib"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate_asnorm(model, calib.embeddings, calib.labels, target_far=0.05)
