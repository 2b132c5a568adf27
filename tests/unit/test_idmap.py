"""Subordinate id files and the id maps planned from them (podman's default layout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rootlet.registry.errors import UsernsError
from rootlet.runtime.oci.idmap import FULL_RANGE, IdMapping, IdRange, map_text, plan_userns, read_subids


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


# --- --userns keep-id ---------------------------------------------------------------------------

def _plan(tmp_path: Path, uid_ranges: str, gid_ranges: str):
    return plan_userns(1000, 1000, "alice", write(tmp_path, "subuid", uid_ranges), write(tmp_path, "subgid", gid_ranges))


def _host_ids(mapping: tuple[IdMapping, ...]) -> list[int]:
    """Every host id a map covers, in inner order (small maps only)."""
    out = []
    for m in sorted(mapping, key=lambda m: m.inner):
        out += range(m.outer, m.outer + m.count)
    return out


def test_keep_id_maps_own_uid_to_itself_and_root_to_a_subordinate_id(tmp_path: Path) -> None:
    from rootlet.runtime.oci.idmap import keep_id_plan

    plan = keep_id_plan(_plan(tmp_path, "alice:100000:65536\n", "alice:100000:65536\n"), 1000, 1000)
    assert plan.host_uid(1000) == 1000 and plan.host_gid(1000) == 1000
    assert plan.host_uid(0) == 100000 and plan.host_uid(999) == 100999 and plan.host_uid(1001) == 101000
    assert plan.uid_count == 65537


def test_keep_id_uses_exactly_the_same_host_ids_as_the_default_map(tmp_path: Path) -> None:
    from rootlet.runtime.oci.idmap import keep_id_plan

    base = _plan(tmp_path, "alice:100000:500\nalice:300000:1000\n", "alice:100000:2000\n")
    keep = keep_id_plan(base, 1000, 1000)
    assert sorted(_host_ids(keep.uid_map)) == sorted(_host_ids(base.uid_map))
    assert keep.host_uid(1000) == 1000
    inners = sorted(m.inner for m in keep.uid_map)
    assert inners[0] == 0  # no gap: inner ids 0 … N are all mapped


def test_keep_id_needs_a_range_at_least_as_large_as_the_uid(tmp_path: Path) -> None:
    from rootlet.runtime.oci.idmap import keep_id_plan

    with pytest.raises(UsernsError, match="at least 1000 subordinate uids"):
        keep_id_plan(_plan(tmp_path, "alice:100000:10\n", "alice:100000:65536\n"), 1000, 1000)


def test_keep_id_refuses_single_id_mode(tmp_path: Path) -> None:
    from rootlet.runtime.oci.idmap import keep_id_plan

    with pytest.raises(UsernsError, match="subordinate id ranges"):
        keep_id_plan(_plan(tmp_path, "", ""), 1000, 1000)


def test_keep_id_fuse_mapping_shows_each_image_id_unchanged(tmp_path: Path) -> None:
    """Compose: image id → host id (default map) → stored id (keep-id map) → shown id (fuse triplets)."""
    from rootlet.runtime.oci.idmap import keep_id_fuse_options, keep_id_plan

    base = _plan(tmp_path, "alice:100000:65536\n", "alice:100000:65536\n")
    keep = keep_id_plan(base, 1000, 1000)
    uid_part = keep_id_fuse_options(base, 1000, 1000).split(",")[0].removeprefix("uidmapping=")
    nums = [int(x) for x in uid_part.split(":")]
    triplets = [tuple(nums[i:i + 3]) for i in range(0, len(nums), 3)]
    host_to_inner = {h: i for m in keep.uid_map for i, h in zip(range(m.inner, m.inner + m.count),
                                                                  range(m.outer, m.outer + m.count))}

    def shown(stored: int) -> int:
        for s, v, n in triplets:
            if s <= stored < s + n:
                return v + stored - s
        raise AssertionError(f"stored id {stored} is not mapped")

    for image_id in (0, 1, 2, 500, 999, 1000, 1001, 1002, 65534, 65536):
        assert shown(host_to_inner[base.host_uid(image_id)]) == image_id
