"""An extraction in which no track succeeds finishes its store, with the failures recorded, and says
that nothing was extracted (issue 21, item 12): it died at the end with numpy's "need at least one
array to stack", on every rerun, so such a store could never be finished."""

from __future__ import annotations

from mrnet.store import FeatureStore
from tests.extract.test_errors import extract, one_line


def test_a_run_where_every_track_fails_finishes_and_says_so_on_every_rerun(tmp_path):
    root = tmp_path / "music"
    for name in ("rock/a.wav", "jazz/b.wav"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not audio at all")
    out = tmp_path / "s.zarr"
    for _ in range(2):
        result = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", root=root)
        text = one_line(result.output)
        assert result.exit_code == 0 and "nothing was extracted: all 2 tracks failed" in text, result.output
    tracks = FeatureStore.open(out).tracks
    assert tracks["status"].to_list() == ["failed", "failed"] and tracks["error"].null_count() == 0


def test_limit_0_finishes_an_empty_store(tmp_path):
    out = tmp_path / "s.zarr"
    result = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", "--limit", "0")
    assert result.exit_code == 0 and "nothing was extracted: the run selected no track" in one_line(result.output), (
        result.output
    )
    assert FeatureStore.open(out).tracks.height == 0
