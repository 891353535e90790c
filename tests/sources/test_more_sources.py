"""VC-Clothes, DeepChange, LaST and manifest sources: layouts, labels, builds, protocols."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from synthetic import make_deepchange_tree, make_last_tree, make_manifest_tree, make_vcclothes_tree, write_manifest

from builder.cli import main
from builder.pipeline import BuildConfig, build
from occluded_ccreid.evaluation import evaluate_protocol, protocols
from occluded_ccreid.features import CLEAN_IMAGE_COLUMN, CORE_COLUMNS
from occluded_ccreid.sources import LayoutError, get_source, source_names
from occluded_ccreid.sources.manifest import RESERVED

SPLITS = {
    "vcclothes": ("train", "query", "gallery"),
    "deepchange": ("train", "validation_query", "validation_gallery", "query", "gallery"),
    "last": ("train", "validation_query", "validation_gallery", "query", "gallery"),
    "manifest": ("train", "query", "gallery"),
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    manifest_tree, rows = make_manifest_tree(base / "manifest")
    manifests = {ext: write_manifest(rows, manifest_tree.root / f"list.{ext}") for ext in ("csv", "jsonl", "parquet")}
    return {
        "vcclothes": (make_vcclothes_tree(base / "vc"), None),
        "deepchange": (make_deepchange_tree(base / "dc"), None),
        "last": (make_last_tree(base / "last"), None),
        "manifest": (manifest_tree, manifests),
    }


def _source(trees, name, ext="jsonl"):
    tree, manifests = trees[name]
    return tree, (manifests[ext] if manifests else tree.root)


# -- scanning ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ext",
    [
        ("vcclothes", None),
        ("deepchange", None),
        ("last", None),
        ("manifest", "csv"),
        ("manifest", "jsonl"),
        ("manifest", "parquet"),
    ],
)
def test_scan_matches_the_tree(trees, name, ext):
    tree, source = _source(trees, name, ext)
    scan = get_source(name).scan(source)
    assert scan.splits == SPLITS[name]
    got = {r.source_path: (r.split, r.pid, r.camid, r.clothes_key) for r in scan.records}
    assert set(got) == set(tree.expected) | set(tree.missing)  # missing files are records, skipped at decode
    assert {p: got[p] for p in tree.expected} == tree.expected
    assert scan.ignored_files == sorted(tree.ignored)  # dot-files (and unlisted DeepChange images)
    if tree.extras:
        extras = {r.source_path: dict(r.extras) for r in scan.records}
        if ext == "csv":  # CSV has no types: extra columns are text
            expected = {p: {k: str(v) for k, v in e.items()} for p, e in tree.extras.items()}
        else:
            expected = tree.extras
        assert {p: extras[p] for p in expected} == expected
    by_outfit = {}
    for r in scan.records:
        if r.clothes_key is None:
            assert r.clothes_id == -1
        else:
            by_outfit.setdefault((r.pid, r.clothes_key), set()).add(r.clothes_id)
    assert sorted(i for ids in by_outfit.values() for i in ids) == list(range(len(by_outfit)))


def test_manifest_column_types(trees):
    _, source = _source(trees, "manifest", "parquet")
    assert get_source("manifest").scan(source).extra_columns == {"quality": "int64", "note": "string"}
    _, source = _source(trees, "manifest", "csv")
    assert get_source("manifest").scan(source).extra_columns == {"quality": "string", "note": "string"}


def test_manifest_reserved_names_are_the_built_columns():
    assert set(CORE_COLUMNS) | set(CLEAN_IMAGE_COLUMN) == RESERVED


# -- end-to-end builds -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vcclothes", "deepchange", "last", "manifest"])
def test_build_end_to_end(trees, name, tmp_path):
    tree, source = _source(trees, name)
    out = tmp_path / f"occluded-{name}"
    assert (
        main(
            [
                "build",
                name,
                str(source),
                "--out",
                str(out),
                "--parsing-dir",
                str(tree.parsing_dir),
                "--no-progress",
                "--shard-size",
                "16",
            ]
        )
        == 0
    )
    ds = load_dataset(str(out))
    assert list(ds) == list(SPLITS[name])
    sizes = {split: sum(1 for v in tree.expected.values() if v[0] == split) for split in SPLITS[name]}
    assert {split: ds[split].num_rows for split in ds} == sizes
    clothes = {r.source_path: r.clothes_id for r in get_source(name).scan(source).records}
    extra_names = sorted({k for e in tree.extras.values() for k in e})
    columns = list(CORE_COLUMNS) + (extra_names if name != "manifest" else ["quality", "note"])
    for split in ds:
        assert ds[split].column_names == columns
        for row in ds[split].remove_columns(["image", "occlusion_mask", "parsing"]):
            path = row["source_path"]
            assert (split, row["pid"], row["camid"]) == tree.expected[path][:3]
            assert row["clothes_id"] == clothes[path]
            assert {k: row[k] for k in tree.extras.get(path, {})} == tree.extras.get(path, {})
    report = json.loads((out / "build_report.json").read_text())
    assert [s["source_path"] for s in report["skipped"]] == tree.missing
    assert all("No such file" in s["reason"] for s in report["skipped"])
    assert report["ignored_files"] == sorted(tree.ignored)
    card = (out / "README.md").read_text()
    assert f"pretty_name: Occluded-{'list' if name == 'manifest' else get_source(name).pretty_name}\n" in card
    for protocol in protocols(name):
        assert f"**{protocol}**" in card
    if name == "deepchange":
        assert "| `tracklet_id` |" in card
    # the protocols run on the built splits themselves (DeepChange's tracklet_id read from its column)
    query, gallery = ("validation_query", "validation_gallery") if name == "deepchange" else ("query", "gallery")
    dist = np.random.default_rng(0).random((ds[query].num_rows, ds[gallery].num_rows))
    labels = {
        split: {c: np.asarray(ds[split][c]) for c in ("pid", "camid", "clothes_id", *extra_names)}
        for split in (query, gallery)
    }
    for protocol_name, protocol in protocols(name).items():
        got = evaluate_protocol(dist, ds[query], ds[gallery], protocol)
        assert got["mAP"] == pytest.approx(
            published(name, protocol_name, dist, labels[query], labels[gallery])[0], abs=1e-9
        )


def test_build_refuses_unknown_occlude_splits_of_a_manifest(trees, tmp_path):
    tree, source = _source(trees, "manifest", "csv")
    with pytest.raises(Exception, match=r"not in list's splits \(train, query, gallery\)"):
        build(
            BuildConfig(
                "manifest",
                source,
                tmp_path / "o",
                parsing_dir=tree.parsing_dir,
                progress=False,
                occlude_splits=("validation",),
            )
        )


# -- protocols against CAL's per-query loop, written from each published protocol --------------------------


def cal_loop(dist, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes, mode="standard"):
    """CAL's compute_ap_cmc / evaluate / evaluate_with_clothes, query by query, on a stable sort."""
    num_q, num_g = dist.shape
    aps, cmc_sum, valid = [], np.zeros(num_g), 0
    for i in range(num_q):
        order = np.argsort(dist[i], kind="stable")
        same_pid = g_pids == q_pids[i]
        same_cam = g_cams == q_cams[i]
        same_clothes = g_clothes == q_clothes[i]
        good = same_pid & ~same_cam
        junk = same_pid & same_cam
        if mode == "cloth_changing":
            good &= ~same_clothes
            junk |= same_pid & same_clothes
        elif mode == "same_clothes":
            good &= same_clothes
            junk |= same_pid & ~same_clothes
        if not good.any():
            continue
        kept = order[~junk[order]]
        hits = np.flatnonzero(good[kept])
        aps.append(np.mean([(j + 1) / (r + 1) for j, r in enumerate(hits)]))
        cmc = np.zeros(num_g)
        cmc[hits[0] :] = 1
        cmc_sum += cmc
        valid += 1
    return float(np.mean(aps)), cmc_sum / valid


def published(source, protocol, dist, q, g):
    """Each protocol as its authors / CAL state it, on CAL's own inputs."""
    qp, gp, qc, gc, qk, gk = q["pid"], g["pid"], q["camid"], g["camid"], q["clothes_id"], g["clothes_id"]
    if source == "vcclothes" and protocol != "general":
        # CAL's VCClothes(mode='sc'|'cc') keeps raw cameras 2,3 | 3,4 in query and gallery; standard evaluate
        raw = (2, 3) if protocol == "same_clothes" else (3, 4)
        rows, cols = np.isin(qc + 1, raw), np.isin(gc + 1, raw)
        return cal_loop(dist[rows][:, cols], qp[rows], gp[cols], qc[rows], gc[cols], qk[rows], gk[cols])
    if source == "deepchange":  # CAL puts the tracklet id where the camera id goes
        return cal_loop(dist, qp, gp, q["tracklet_id"], g["tracklet_id"], qk, gk)
    if source == "last" or (source == "manifest" and protocol == "any_camera"):
        # CAL's LaST loader numbers the cameras 0..nq-1 (query) and nq.. (gallery): nothing shares one
        return cal_loop(dist, qp, gp, np.arange(len(qp)), len(qp) + np.arange(len(gp)), qk, gk)
    if source == "prcc":  # CAL's test_prcc: query camera B (same clothes) or C against gallery camera A
        rows, cols = qc == (1 if protocol == "same_clothes" else 2), gc == 0
        return cal_loop(dist[rows][:, cols], qp[rows], gp[cols], qc[rows], gc[cols], qk[rows], gk[cols])
    mode = {"general": "standard"}.get(protocol, protocol)  # LTCC, VC-Clothes general, manifest: test()
    return cal_loop(dist, qp, gp, qc, gc, qk, gk, mode)


def _labels(rng, n, source):
    pid = rng.integers(0, 12, n)
    cams = {"prcc": 3, "vcclothes": 4, "last": 1}.get(source, 5)
    camid = rng.integers(0, cams, n) if source != "last" else np.full(n, -1)
    labels = {
        "pid": pid,
        "camid": camid,
        "clothes_id": pid * 3 + rng.integers(0, 3, n),
        "tracklet_id": pid * 4 + rng.integers(0, 4, n),
    }
    return labels


@pytest.mark.parametrize("source, protocol", [(s, p) for s in source_names() for p in protocols(s)])
def test_protocol_equals_the_published_per_query_loop(source, protocol):
    rng = np.random.default_rng(abs(hash((source, protocol))) % 2**32)
    q, g = _labels(rng, 80, source), _labels(rng, 230, source)
    if source == "prcc":
        q["camid"], g["camid"] = rng.integers(1, 3, 80), np.zeros(230, dtype=int)
    dist = rng.random((80, 230)).astype(np.float32)
    dist[:, ::9] = dist[:, :1]  # ties: broken by gallery index in both
    got = evaluate_protocol(dist, q, g, protocols(source)[protocol])
    expected_map, expected_cmc = published(source, protocol, dist.astype(np.float64), q, g)
    assert abs(got["mAP"] - expected_map) < 1e-9
    np.testing.assert_allclose(got["cmc"], expected_cmc, rtol=0, atol=1e-9)


def test_protocol_junk_column_must_be_in_the_labels():
    q = {"pid": np.arange(3), "camid": np.zeros(3), "clothes_id": np.zeros(3)}
    with pytest.raises(KeyError, match="tracklet_id"):
        evaluate_protocol(np.zeros((3, 3)), q, q, protocols("deepchange")["general"])


# -- layout errors -----------------------------------------------------------------------------------------


def _vc(tmp_path):
    for folder in ("train", "query", "gallery"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def test_vcclothes_bad_names_are_named(tmp_path):
    root = _vc(tmp_path)
    (root / "train" / "0001-01-01.jpg").write_bytes(b"x")
    (root / "query" / "0001-0\u0661-01-01.jpg").write_bytes(b"x")  # Arabic-Indic digit
    with pytest.raises(LayoutError, match=r"2 image\(s\).*\n  train/0001-01-01.jpg\n  query/0001-0\u0661-01-01.jpg\n"):
        get_source("vcclothes").scan(root)


def test_vcclothes_pid_spelled_two_ways_is_refused(tmp_path):
    root = _vc(tmp_path)
    (root / "train" / "0001-01-01-01.jpg").write_bytes(b"x")
    (root / "gallery" / "01-02-01-01.jpg").write_bytes(b"x")
    with pytest.raises(
        LayoutError, match=r"pid 1: '0001' \(train/0001-01-01-01.jpg\), '01' \(gallery/01-02-01-01.jpg\)"
    ):
        get_source("vcclothes").scan(root)


def test_deepchange_list_errors(tmp_path, trees):
    tree, _ = trees["deepchange"]
    import shutil

    root = tmp_path / "dc"
    shutil.copytree(tree.root, root)
    (root / "val-set-query-bbox.txt").unlink()
    with pytest.raises(LayoutError, match=r"missing list file\(s\) val-set-query-bbox.txt"):
        get_source("deepchange").scan(root)
    (root / "val-set-query-bbox.txt").write_text("P00200_C03_D20200105_000001.jpg,12\nP00200_C03_x.jpg;7\n")
    with pytest.raises(LayoutError, match=r"val-set-query-bbox.txt line 2: expected '<image name>,<tracklet id>'"):
        get_source("deepchange").scan(root)
    (root / "val-set-query-bbox.txt").write_text("P00200_C03_D20200105_000001.jpg,12\nphoto.jpg,3\n")
    with pytest.raises(LayoutError, match=r"not named as the DeepChange layout expects:\n  val-set-query/photo.jpg"):
        get_source("deepchange").scan(root)


def test_last_gallery_folder_must_match_the_names(tmp_path):
    for folder in ("train", "val/query", "val/gallery", "test/query", "test/gallery"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "train" / "000001").mkdir()
    (tmp_path / "train" / "000001" / "000001_0_1.jpg").write_bytes(b"x")
    (tmp_path / "test" / "gallery" / "000002").mkdir()
    (tmp_path / "test" / "gallery" / "000002" / "000003_0_0.jpg").write_bytes(b"x")
    with pytest.raises(LayoutError, match=r"\n  test/gallery/000002/000003_0_0.jpg\n"):
        get_source("last").scan(tmp_path)


@pytest.mark.parametrize("ext, where", [("csv", "line 3"), ("jsonl", "line 2"), ("parquet", "row 2")])
def test_manifest_bad_row_names_line_and_column(tmp_path, ext, where):
    rows = [{"path": "a.jpg", "pid": "1", "split": "train"}, {"path": "b.jpg", "pid": "x7", "split": "train"}]
    file = write_manifest(rows, tmp_path / f"m.{ext}")
    with pytest.raises(LayoutError, match=rf"m\.{ext} {where}, column pid: expected an integer \(32-bit\), got 'x7'"):
        get_source("manifest").scan(file)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"path": "a.jpg", "pid": 1}], r"has no column\(s\) split"),
        (
            [{"path": "a.jpg", "pid": 1, "split": "train"}, {"path": "./a.jpg", "pid": 2, "split": "query"}],
            r"line 3: a.jpg is already listed at line 2",
        ),
        ([{"path": "a.jpg", "pid": 1, "split": "train/x"}], r"line 2, column split: expected a split name"),
        ([{"path": "a.jpg", "pid": 1, "split": "train", "camid": ""}], r"line 2, column camid: expected an integer"),
        ([{"path": "", "pid": 1, "split": "train"}], r"line 2, column path: expected a file path"),
        (
            [{"path": "a.jpg", "pid": 1, "split": "train", "parsing": 3}],
            r"column\(s\) parsing are names of built columns",
        ),
    ],
)
def test_manifest_errors(tmp_path, rows, message):
    with pytest.raises(LayoutError, match=message):
        get_source("manifest").scan(write_manifest(rows, tmp_path / "m.csv"))


def test_manifest_jsonl_mixed_types_and_bad_json(tmp_path):
    file = tmp_path / "m.jsonl"
    file.write_text(
        '{"path": "a.jpg", "pid": 1, "split": "train", "q": 1}\n'
        '{"path": "b.jpg", "pid": 1, "split": "train", "q": "high"}\n'
    )
    with pytest.raises(LayoutError, match=r"line 2, column q: a str value where other lines have int"):
        get_source("manifest").scan(file)
    file.write_text('{"path": "a.jpg", "pid": 1, "split": "train"}\n{"path": \n')
    with pytest.raises(LayoutError, match=r"m.jsonl line 2: not valid JSON"):
        get_source("manifest").scan(file)
    table = pa.table({"path": ["a.jpg"], "pid": [1], "split": ["train"], "boxes": [[1, 2]]})
    pq.write_table(table, tmp_path / "m.parquet")
    with pytest.raises(LayoutError, match=r"column boxes: type list<element: int64> is not supported"):
        get_source("manifest").scan(tmp_path / "m.parquet")
    with pytest.raises(LayoutError, match=r"unknown format '.txt'"):
        (tmp_path / "m.txt").write_text("x")
        get_source("manifest").scan(tmp_path / "m.txt")


def test_manifest_without_camid_and_clothes_and_with_parent_paths(tmp_path):
    rows = [
        {"path": "../pics/a.jpg", "pid": 3, "split": "gallery"},
        {"path": "b//c/./d.jpg", "pid": 4, "split": "query"},
    ]
    scan = get_source("manifest").scan(write_manifest(rows, tmp_path / "lists" / "m.csv"))
    got = {r.source_path: (r.split, r.pid, r.camid, r.clothes_key, r.clothes_id) for r in scan.records}
    assert got == {
        "b/c/d.jpg": ("query", 4, -1, None, -1),
        (tmp_path / "pics" / "a.jpg").as_posix(): ("gallery", 3, -1, None, -1),
    }
    assert scan.splits == ("query", "gallery") and scan.root == (tmp_path / "lists").resolve()
