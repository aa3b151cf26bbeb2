"""A refused mrnet-extract changes nothing (issue 21, item 3): no store is left at --out by a run that
fails before its first track, and a folder of the user's own files is never taken for a store; and a
bucket that does not exist is named (item 13)."""

from __future__ import annotations

from tests.extract.test_errors import extract, one_line


def test_a_read_only_manifests_dir_leaves_no_store_at_out(tmp_path, read_only):
    locked = read_only(tmp_path / "locked")
    out = tmp_path / "s.zarr"
    result = extract(tmp_path, "--out", out, "--manifests-dir", locked / "m")
    assert result.exit_code == 2 and f"cannot write {locked}/m" in one_line(result.output)
    assert not out.exists() or list(out.rglob("*")) == []


def test_the_users_own_features_and_stats_folders_are_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    (out / "features").mkdir(parents=True)
    (out / "stats").mkdir()
    (out / "features" / "my_features.csv").write_text("a,b\n")
    (out / "stats" / "results.csv").write_text("acc\n")
    for extra in ([], ["--overwrite"]):
        result = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", *extra)
        text = one_line(result.output)
        assert result.exit_code == 2 and "is not an mrnet store" in text and "--overwrite" not in text, text
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "features",
        "features/my_features.csv",
        "stats",
        "stats/results.csv",
    ]


def test_a_bucket_that_does_not_exist_is_named(tmp_path, s3_env):
    result = extract(tmp_path, "--out", "s3://no-such-bucket-mrnet/x.zarr", "--manifests-dir", tmp_path / "m")
    text = one_line(result.output)
    assert result.exit_code == 2 and "no-such-bucket-mrnet" in text, text
