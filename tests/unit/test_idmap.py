"""Subordinate id files and the id maps planned from them (podman's default layout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rootlet.registry.errors import UsernsError
from rootlet.runtime.idmap import FULL_RANGE, IdMapping, IdRange, map_text, plan_userns, read_subids


def write(tmp_path: Path, name: str, text: str) -> str:
    """A subuid/subgid-style file with ``text``; returns its path."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_read_subids_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, "subuid", "alice:100000:65536\nrl:165536:65536\n")
    assert read_subids(path, "rl", 1001) == [IdRange(165536, 65536)]


def test_read_subids_by_numeric_uid(tmp_path: Path) -> None:
    path = write(tmp_path, "subuid", "1001:200000:1000\n")
    assert read_subids(path, "rl", 1001) == [IdRange(200000, 1000)]


def test_read_subids_keeps_file_order_across_names_and_uids(tmp_path: Path) -> None:
    path = write(tmp_path, "subuid", "rl:300000:10\nother:1:5\n1001:100000:65536\nrl:500000:7\n")
    assert read_subids(path, "rl", 1001) == [IdRange(300000, 10), IdRange(100000, 65536), IdRange(500000, 7)]


def test_read_subids_skips_comments_blank_and_malformed_lines(tmp_path: Path) -> None:
    text = "\n".join([
        "# rl:1:1 is a comment",
        "",
        "   ",
        "rl:100000",            # too few fields
        "rl:100000:65536:9",    # too many fields
        "rl:abc:65536",         # not a number
        "rl:100000:-5",         # negative count
        "rl:100000:0",          # empty range
        "rl:4294967290:100",    # beyond the 32-bit id space
        "rl: 100000 : 65536 ",  # spaces around numbers are tolerated
        "rlx:1:1",              # another user whose name starts the same
        "",
    ])
    path = write(tmp_path, "subuid", text)
    assert read_subids(path, "rl", 1001) == [IdRange(100000, 65536)]


def test_read_subids_missing_file_means_no_ranges(tmp_path: Path) -> None:
    assert read_subids(str(tmp_path / "absent"), "rl", 1001) == []


def test_read_subids_unreadable_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "dir-not-file"
    path.mkdir()
    with pytest.raises(UsernsError) as info:
        read_subids(str(path), "rl", 1001)
    assert str(path) in info.value.message


def test_plan_follows_podmans_default_layout(tmp_path: Path) -> None:
    subuid = write(tmp_path, "subuid", "rl:100000:65536\n")
    subgid = write(tmp_path, "subgid", "rl:200000:65536\n")
    plan = plan_userns(uid=1001, gid=1002, user="rl", subuid_path=subuid, subgid_path=subgid)
    assert plan.uid_map == (IdMapping(0, 1001, 1), IdMapping(1, 100000, 65536))
    assert plan.gid_map == (IdMapping(0, 1002, 1), IdMapping(1, 200000, 65536))
    assert not plan.single_id and not plan.rootful
    assert plan.reason is None and plan.hint is None
    assert plan.host_uid(0) == 1001
    assert plan.host_uid(1) == 100000
    assert plan.host_uid(65536) == 165535
    assert plan.host_uid(65537) is None
    assert plan.host_gid(2) == 200001
    assert plan.uid_count == 65537
    assert map_text(plan.uid_map) == "0 1001 1\n1 100000 65536\n"


def test_plan_appends_further_ranges(tmp_path: Path) -> None:
    subuid = write(tmp_path, "subuid", "rl:100000:1000\n1001:300000:500\n")
    subgid = write(tmp_path, "subgid", "rl:100000:65536\n")
    plan = plan_userns(uid=1001, gid=1001, user="rl", subuid_path=subuid, subgid_path=subgid)
    assert plan.uid_map == (IdMapping(0, 1001, 1), IdMapping(1, 100000, 1000), IdMapping(1001, 300000, 500))
    assert plan.host_uid(1001) == 300000


def test_plan_without_subuid_range_is_single_id_with_reason_and_hint(tmp_path: Path) -> None:
    subuid = write(tmp_path, "subuid", "alice:100000:65536\n")
    subgid = write(tmp_path, "subgid", "rl:100000:65536\n")
    plan = plan_userns(uid=1001, gid=1001, user="rl", subuid_path=subuid, subgid_path=subgid)
    assert plan.single_id and not plan.rootful
    assert plan.uid_map == (IdMapping(0, 1001, 1),)
    assert plan.gid_map == (IdMapping(0, 1001, 1),)
    assert plan.reason == f"no range for rl in {subuid}"
    assert plan.hint is not None
    assert "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 rl" in plan.hint


def test_plan_names_both_missing_files(tmp_path: Path) -> None:
    plan = plan_userns(uid=1001, gid=1001, user="rl", subuid_path=str(tmp_path / "u"),
                       subgid_path=str(tmp_path / "g"))
    assert plan.single_id
    assert plan.reason is not None and str(tmp_path / "u") in plan.reason and str(tmp_path / "g") in plan.reason


def test_plan_for_root_is_rootful_identity(tmp_path: Path) -> None:
    plan = plan_userns(uid=0, gid=0, user="root", subuid_path=str(tmp_path / "u"), subgid_path=str(tmp_path / "g"))
    assert plan.rootful and not plan.single_id
    assert plan.uid_map == (IdMapping(0, 0, FULL_RANGE),)
    assert plan.host_uid(12345) == 12345


def test_plan_defaults_to_the_calling_user(tmp_path: Path) -> None:
    plan = plan_userns(subuid_path=str(tmp_path / "u"), subgid_path=str(tmp_path / "g"))
    if os.getuid() == 0:
        assert plan.rootful
    else:
        assert plan.uid_map[0] == IdMapping(0, os.getuid(), 1)
        assert plan.gid_map[0] == IdMapping(0, os.getgid(), 1)
