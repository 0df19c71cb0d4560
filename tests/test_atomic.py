import os
import stat

import pytest

from sft_vs_rlvr import atomic


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "results.jsonl"
    atomic.write_jsonl(target, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic.write_jsonl(target, rows())
    assert atomic.read_jsonl(target) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # no temporary file left behind


def test_files_get_the_usual_permissions(tmp_path):
    path = atomic.write_json(tmp_path / "x.json", {"k": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
