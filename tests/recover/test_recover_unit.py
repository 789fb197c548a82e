#!/usr/bin/env python3
"""Unit tests of scripts/recover.py on repositories written by make_fixture.py (an independent
writer of format 2). Run: python3 tests/recover/test_recover_unit.py (test_recover.sh runs it
first). Needs zstd, age and age-keygen; the blake3 checks are tested when b3sum is on PATH."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixture  # noqa: E402

spec = importlib.util.spec_from_file_location("recover", os.path.join(HERE, "..", "..", "scripts", "recover.py"))
recover = importlib.util.module_from_spec(spec)
sys.modules["recover"] = recover
spec.loader.exec_module(recover)

HAS_B3SUM = shutil.which("b3sum") is not None
IDS = ["20261205T070000Z-aaaaaaaa", "20261205T080000Z-bbbbbbbb"]


def describe(root: str) -> dict:
    """Every entry below `root` (the root itself as ``): type, mode, mtime, content or link."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] if dirpath == root else []:
            out[name] = entry(dirpath)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = entry(path)
    return out


def entry(path: str) -> tuple:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", int(st.st_mtime), os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime))
    with open(path, "rb") as f:
        return ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), f.read())


def run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = recover.main(list(argv))
    return code, err.getvalue()


def file_entry(path: str, data: bytes, mode: int = 0o644, mtime: int = 1_790_000_000) -> dict:
    return {"path": path, "type": "file", "mode": mode, "size": len(data), "mtime": mtime, "blake3": make_fixture.b3(data)}


def dir_entry(path: str, mode: int = 0o755) -> dict:
    return {"path": path, "type": "dir", "mode": mode, "size": 0, "mtime": 1_790_000_000}


def link_entry(path: str, link: str) -> dict:
    return {"path": path, "type": "symlink", "mode": 0o777, "size": 0, "mtime": 1_790_000_000, "link": link}


class Base(unittest.TestCase):
    recipient: str | None = None

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="recover-test-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.repo = os.path.join(self.tmp, "repo")
        self.target = os.path.join(self.tmp, "out")

    def fixture(self, recipient: str | None = None) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            args = [self.tmp] + (["--recipient", recipient] if recipient else [])
            make_fixture.main(args)
        self.state = os.path.join(self.tmp, "state")

    def custom(self, entries: list[dict], contents: dict[str, bytes], **kw) -> str:
        sid = "20261205T090000Z-cccccccc"
        make_fixture.RepoWriter(self.repo).snapshot(sid, entries, contents, **kw)
        return sid

    def assert_nothing_written(self) -> None:
        self.assertFalse(os.path.lexists(self.target))
        leftovers = [n for n in os.listdir(self.tmp) if "agentbak-recover" in n]
        self.assertEqual(leftovers, [], "the hidden folder must be removed on failure")


class Recovers(Base):
    def test_latest_matches_the_state_exactly(self) -> None:
        self.fixture()
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertEqual(describe(self.target), describe(self.state))
        self.assertIn("7 files, 604199 bytes", err)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.target, "blob.bin")).st_mode), 0o755)
        self.assertEqual(os.readlink(os.path.join(self.target, "memory/creds")), "../config/credentials.json")
        if not HAS_B3SUM:
            self.assertIn("blake3 are not checked", err)

    def test_an_older_snapshot_by_prefix(self) -> None:
        self.fixture()
        code, err = run(self.repo, "20261205T07", self.target)
        self.assertEqual(code, 0, err)
        with open(os.path.join(self.target, "memory/notes.md"), "rb") as f:
            old = f.read()
        with open(os.path.join(self.state, "memory/notes.md"), "rb") as f:
            self.assertEqual(old + b"one more line\n", f.read())

    def test_small_batches_give_the_same_tree(self) -> None:
        self.fixture()
        saved = recover.BATCH_RAW_BYTES
        recover.BATCH_RAW_BYTES = 1000
        self.addCleanup(setattr, recover, "BATCH_RAW_BYTES", saved)
        code, err = run(self.repo, IDS[1], self.target)
        self.assertEqual(code, 0, err)
        self.assertEqual(describe(self.target), describe(self.state))
        self.assertRegex(err, r"\((1[0-9]|[2-9][0-9]) zstd calls\)")

    def test_an_empty_target_folder_is_filled(self) -> None:
        self.fixture()
        os.mkdir(self.target)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertEqual(describe(self.target), describe(self.state))

    def test_a_chunk_listed_twice_is_read_from_the_copy_that_exists(self) -> None:
        # An interrupted prune: the blobs were copied into a new pack and indexed, the old
        # pack was deleted, the old index file still lists it.
        self.fixture()
        first = sorted(glob.glob(os.path.join(self.repo, "index", "*.json")))[0]
        with open(first) as f:
            pack = json.load(f)["packs"][0]
        old = os.path.join(self.repo, "packs", pack["id"][:2], pack["id"])
        with open(old, "rb") as f:
            data = f.read()
        new_id = "f" * 64
        os.makedirs(os.path.join(self.repo, "packs", "ff"), exist_ok=True)
        with open(os.path.join(self.repo, "packs", "ff", new_id), "wb") as f:
            f.write(data)
        with open(os.path.join(self.repo, "index", "prune-20261205T100000Z-0000.json"), "w") as f:
            json.dump({"format": 2, "packs": [{**pack, "id": new_id}]}, f)
        os.unlink(old)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertEqual(describe(self.target), describe(self.state))

    def test_a_copy_of_the_right_size_is_read_before_a_truncated_one(self) -> None:
        self.fixture()
        first = sorted(glob.glob(os.path.join(self.repo, "index", "*.json")))[0]
        with open(first) as f:
            pack = json.load(f)["packs"][0]
        old = os.path.join(self.repo, "packs", pack["id"][:2], pack["id"])
        with open(old, "rb") as f:
            data = f.read()
        os.makedirs(os.path.join(self.repo, "packs", "ff"), exist_ok=True)
        with open(os.path.join(self.repo, "packs", "ff", "f" * 64), "wb") as f:
            f.write(data)
        with open(os.path.join(self.repo, "index", "prune-20261205T100000Z-0000.json"), "w") as f:
            json.dump({"format": 2, "packs": [{**pack, "id": "f" * 64}]}, f)
        os.truncate(old, len(data) - 1)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertEqual(describe(self.target), describe(self.state))

    def test_set_id_bits_are_dropped_and_folders_get_their_modes(self) -> None:
        entries = [dir_entry("state", 0o750), dir_entry("state/d", 0o500), file_entry("state/d/x", b"x", 0o4755)]
        self.custom(entries, {"state/d/x": b"x"})
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.target, "d/x")).st_mode), 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.target, "d")).st_mode), 0o500)
        self.assertEqual(stat.S_IMODE(os.stat(self.target).st_mode), 0o750)
        os.chmod(os.path.join(self.target, "d"), 0o700)


    def test_latest_is_the_newest_by_created_at_then_id_as_agentbak(self) -> None:
        # Two snapshots of one second: their ids' random digits do not tell which is newer.
        writer = make_fixture.RepoWriter(self.repo)
        data = {1: b"first", 2: b"second", 3: b"third"}
        cases = [
            ("20261205T090000Z-ffffffff", "2026-12-05T09:00:00.100000001Z", 1),
            ("20261205T090000Z-00000000", "2026-12-05T09:00:00.100000002Z", 2),
            # 08:59:59 in UTC, whatever its id says: older than both.
            ("20261205T090001Z-99999999", "2026-12-05T09:59:59+01:00", 3),
        ]
        for sid, created, n in cases:
            writer.snapshot(sid, [file_entry("state/f", data[n])], {"state/f": data[n]}, created=created)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertIn("recovered snapshot 20261205T090000Z-00000000", err)
        with open(os.path.join(self.target, "f"), "rb") as f:
            self.assertEqual(f.read(), b"second")
        self.assertEqual(recover.created_ns("2026-12-05T09:00:00.1Z") - recover.created_ns("2026-12-05T09:00:00Z"), 100_000_000)
        for bad in ["2026-12-05 09:00:00Z", "2026-02-30T09:00:00Z", "2026-12-05T09:00:00", 7, None]:
            self.assertIsNone(recover.created_ns(bad), bad)

    def test_only_complete_snapshots_are_named_as_agentbak_names_them(self) -> None:
        self.fixture()
        # The newer snapshot's refs file is gone (agentbak lists it as an orphan, not as a
        # snapshot), and a sidecar that does not parse lies beside them.
        os.unlink(os.path.join(self.repo, "snapshots", IDS[1] + ".refs"))
        with open(os.path.join(self.repo, "snapshots", "20261205T100000Z-dddddddd.json"), "w") as f:
            f.write("{not json")
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertIn(f"recovered snapshot {IDS[0]}", err)
        self.assertIn("20261205T100000Z-dddddddd.json: a sidecar is not valid JSON", err)
        shutil.rmtree(self.target)
        code, err = run(self.repo, "20261205T08", self.target)
        self.assertEqual(code, 2, err)
        # Named by its full id, it is still recovered, with a warning.
        code, err = run(self.repo, IDS[1], self.target)
        self.assertEqual(code, 0, err)
        self.assertIn(f"agentbak does not list snapshot {IDS[1]}", err)
        self.assertEqual(describe(self.target), describe(self.state))

    def test_an_index_without_the_state_folder_entry(self) -> None:
        # agentbak's snapshots list `state/...` entries only; the folder itself is then 0700.
        self.custom([dir_entry("state/d", 0o755), file_entry("state/d/x", b"x", 0o640)], {"state/d/x": b"x"})
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)
        self.assertEqual(stat.S_IMODE(os.stat(self.target).st_mode), 0o700)
        self.assertEqual(entry(os.path.join(self.target, "d/x")), ("file", 0o640, 1_790_000_000, b"x"))


class Encrypted(Base):
    def setUp(self) -> None:
        super().setUp()
        self.key = os.path.join(self.tmp, "key.txt")
        out = subprocess.run(["age-keygen", "-o", self.key], stderr=subprocess.PIPE, check=True).stderr.decode()
        self.recipient = out.split("Public key: ")[1].strip()
        self.fixture(self.recipient)
        for path in glob.glob(os.path.join(self.repo, "snapshots", "*.json")):
            with open(path) as f:
                self.assertTrue(json.load(f)["encrypted"])

    def test_recovers_with_the_identity(self) -> None:
        self.assertTrue(glob.glob(os.path.join(self.repo, "packs", "*", "*.age")))
        code, err = run(self.repo, "latest", self.target, "--identity", self.key)
        self.assertEqual(code, 0, err)
        self.assertEqual(describe(self.target), describe(self.state))

    def test_identity_from_the_environment(self) -> None:
        os.environ["AGENTBAK_IDENTITY"] = self.key
        self.addCleanup(os.environ.pop, "AGENTBAK_IDENTITY")
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 0, err)

    def test_without_an_identity_exit_2(self) -> None:
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 2, err)
        self.assertIn("is encrypted: pass --identity FILE", err)
        self.assert_nothing_written()

    def test_a_wrong_identity_exit_5(self) -> None:
        other = os.path.join(self.tmp, "other.txt")
        subprocess.run(["age-keygen", "-o", other], stderr=subprocess.DEVNULL, check=True)
        code, err = run(self.repo, "latest", self.target, "--identity", other)
        self.assertEqual(code, 5, err)
        self.assertIn("age cannot decrypt it", err)
        self.assert_nothing_written()

    def test_decrypted_packs_are_removed(self) -> None:
        before = set(glob.glob(os.path.join(tempfile.gettempdir(), "agentbak-recover-*")))
        code, err = run(self.repo, "latest", self.target, "--identity", self.key)
        self.assertEqual(code, 0, err)
        self.assertEqual(set(glob.glob(os.path.join(tempfile.gettempdir(), "agentbak-recover-*"))), before)


class Refuses(Base):
    def test_a_missing_pack(self) -> None:
        self.fixture()
        os.unlink(sorted(glob.glob(os.path.join(self.repo, "packs", "*", "*")))[0])
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("missing", err)
        self.assert_nothing_written()

    def test_a_chunk_in_no_index(self) -> None:
        self.fixture()
        for path in glob.glob(os.path.join(self.repo, "index", "*.json")):
            os.unlink(path)
        os.mkdir(os.path.join(self.repo, "index")) if not os.path.isdir(os.path.join(self.repo, "index")) else None
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("is in no index file", err)
        self.assert_nothing_written()

    def test_a_flipped_byte_in_a_pack(self) -> None:
        self.fixture()
        for path in glob.glob(os.path.join(self.repo, "packs", "*", "*")):
            with open(path, "r+b") as f:
                f.seek(os.path.getsize(path) // 2)
                b = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([b[0] ^ 0x55]))
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assert_nothing_written()

    def test_a_pack_of_another_size_than_its_index_says(self) -> None:
        self.fixture()
        path = sorted(glob.glob(os.path.join(self.repo, "packs", "*", "*")))[0]
        with open(path, "ab") as f:
            f.write(b"\0")
        code, err = run(self.repo, IDS[0], self.target)
        self.assertEqual(code, 5, err)
        self.assertIn(f"{path}: the pack holds {os.path.getsize(path)} bytes, the index says {os.path.getsize(path) - 1}", err)
        self.assert_nothing_written()

    def test_a_tree_of_another_snapshot(self) -> None:
        entries = [file_entry("state/f", b"x")]
        other = "20261205T080000Z-eeeeeeee"
        index = {"format": 1, "tool_version": "0.1.0", "agent": "kevin", "snapshot_id": other,
                 "created_at": "2026-12-05T08:00:00Z", "entries": entries, "secrets": []}
        tree = json.dumps({"format": 2, "index": index, "files": {"state/f": {"chunks": [hashlib.sha256(b"x").hexdigest()]}}}).encode()
        sid = self.custom(entries, {"state/f": b"x"}, tree_override=tree)
        code, err = run(self.repo, sid, self.target)
        self.assertEqual(code, 5, err)
        self.assertIn(f"the tree belongs to another snapshot ('{other}')", err)
        self.assert_nothing_written()

    def test_a_raw_length_the_frame_does_not_state(self) -> None:
        self.fixture()
        path = sorted(glob.glob(os.path.join(self.repo, "index", "*.json")))[-1]
        with open(path) as f:
            doc = json.load(f)
        for pack in doc["packs"]:
            for blob in pack["blobs"]:
                blob[3] += 1
        with open(path, "w") as f:
            json.dump(doc, f)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("the index says", err)

    def test_a_blob_that_is_not_exactly_one_frame(self) -> None:
        self.fixture()
        path = sorted(glob.glob(os.path.join(self.repo, "index", "*.json")))[0]
        with open(path) as f:
            doc = json.load(f)
        blobs = next(p["blobs"] for p in doc["packs"] if len(p["blobs"]) >= 2)
        blobs[0][2] += blobs[1][2]  # swallows the next frame too
        with open(path, "w") as f:
            json.dump(doc, f)
        code, err = run(self.repo, IDS[0], self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("after its zstd frame", err)

    def test_unsafe_paths(self) -> None:
        for bad in ["state/../escape", "/etc/passwd", "other/x", "state//x", "state/./x", "statex/y", "state/a\0b"]:
            with self.subTest(bad=bad):
                shutil.rmtree(self.repo, ignore_errors=True)
                self.custom([dir_entry("state"), file_entry(bad, b"pwned")], {bad: b"pwned"})
                code, err = run(self.repo, "latest", self.target)
                self.assertEqual(code, 5, err)
                self.assertIn("unsafe path", err)
                self.assert_nothing_written()
                self.assertFalse(os.path.exists(os.path.join(self.tmp, "escape")))

    def test_entries_below_a_symlink_either_order(self) -> None:
        cases = [
            [dir_entry("state"), link_entry("state/l", self.tmp), file_entry("state/l/x", b"x")],
            [dir_entry("state"), dir_entry("state/l"), file_entry("state/l/x", b"x"), link_entry("state/l", self.tmp)],
            [dir_entry("state"), file_entry("state/l/x", b"x"), link_entry("state/l", self.tmp)],
            [dir_entry("state"), link_entry("state/l", "."), dir_entry("state/l/d")],
        ]
        for entries in cases:
            with self.subTest(entries=[e["path"] for e in entries]):
                shutil.rmtree(self.repo, ignore_errors=True)
                self.custom(entries, {"state/l/x": b"x"})
                code, err = run(self.repo, "latest", self.target)
                self.assertEqual(code, 5, err)
                self.assertRegex(err, "below a symlink|link over entries|duplicate")
                self.assert_nothing_written()
                self.assertFalse(os.path.exists(os.path.join(self.tmp, "x")))

    def test_duplicates_and_entries_below_a_file(self) -> None:
        cases = [
            [dir_entry("state"), file_entry("state/a", b"1"), file_entry("state/a", b"1")],
            [dir_entry("state"), file_entry("state/a", b"1"), file_entry("state/a/b", b"1")],
            [dir_entry("state"), file_entry("state", b"1")],
        ]
        for entries in cases:
            with self.subTest(entries=[e["path"] for e in entries]):
                shutil.rmtree(self.repo, ignore_errors=True)
                self.custom(entries, {e["path"]: b"1" for e in entries})
                code, err = run(self.repo, "latest", self.target)
                self.assertEqual(code, 5, err)
                self.assert_nothing_written()

    def test_links_leaving_the_target_are_skipped_like_agentbak(self) -> None:
        entries = [
            dir_entry("state"), dir_entry("state/d"), file_entry("state/d/f", b"data"),
            link_entry("state/ok", "d/f"), link_entry("state/d/up", "../d/f"),
            link_entry("state/abs", "/etc/passwd"), link_entry("state/d/out", "../../x"),
            link_entry("state/y", "."), link_entry("state/sneaky", "y/.."),
            link_entry("state/p", "q"), link_entry("state/q", "p"),
        ]
        self.custom(entries, {"state/d/f": b"data"})
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 3, err)
        for kept in ["ok", "d/up", "y"]:
            self.assertTrue(os.path.islink(os.path.join(self.target, kept)), kept)
        for skipped in ["abs", "d/out", "sneaky", "p", "q"]:
            self.assertFalse(os.path.lexists(os.path.join(self.target, skipped)), skipped)
            self.assertIn(f"skipped the link state/{skipped} ->", err)
        self.assertIn("chain of more than 40 links", err)

    def test_a_file_whose_chunks_do_not_add_up_to_its_size(self) -> None:
        entry = file_entry("state/f", b"abc")
        entry["size"] = 4
        self.custom([dir_entry("state"), entry], {"state/f": b"abc"})
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("its chunks hold 3 bytes, the index says 4", err)
        self.assert_nothing_written()

    def test_more_bytes_than_the_sidecar_counts(self) -> None:
        sid = self.custom([dir_entry("state"), file_entry("state/f", b"abc")], {"state/f": b"abc"})
        path = os.path.join(self.repo, "snapshots", sid + ".json")
        with open(path) as f:
            doc = json.load(f)
        doc["counts"]["bytes"] = 2
        with open(path, "w") as f:
            json.dump(doc, f)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("more than the sidecar counts", err)

    def test_a_tree_of_another_size(self) -> None:
        sid = self.custom([dir_entry("state")], {})
        path = os.path.join(self.repo, "snapshots", sid + ".json")
        with open(path) as f:
            doc = json.load(f)
        doc["tree"]["size"] -= 1
        with open(path, "w") as f:
            json.dump(doc, f)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("the tree's chunks hold more than its size", err)

    @unittest.skipUnless(HAS_B3SUM, "b3sum is not on PATH")
    def test_blake3_mismatches_with_b3sum(self) -> None:
        entry = file_entry("state/f", b"abc")
        entry["blake3"] = make_fixture.b3(b"abd")
        self.custom([dir_entry("state"), entry], {"state/f": b"abc"})
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("state/f: its blake3 is", err)
        self.assert_nothing_written()
        shutil.rmtree(self.repo)
        sid = self.custom([dir_entry("state")], {})
        path = os.path.join(self.repo, "snapshots", sid + ".json")
        with open(path) as f:
            doc = json.load(f)
        doc["tree"]["blake3"] = "0" * 64
        with open(path, "w") as f:
            json.dump(doc, f)
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 5, err)
        self.assertIn("the tree's blake3 is", err)

    def test_a_target_that_is_not_empty(self) -> None:
        self.fixture()
        os.mkdir(self.target)
        open(os.path.join(self.target, "keep"), "w").close()
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 1, err)
        self.assertEqual(os.listdir(self.target), ["keep"])

    def test_unknown_and_ambiguous_names(self) -> None:
        self.fixture()
        code, err = run(self.repo, "2027", self.target)
        self.assertEqual(code, 2, err)
        code, err = run(self.repo, "20261205T0", self.target)
        self.assertEqual(code, 2, err)
        self.assertIn("names 2 snapshots", err)

    def test_a_format_1_snapshot_is_pointed_to_zstd_and_tar(self) -> None:
        os.makedirs(os.path.join(self.repo, "snapshots"))
        with open(os.path.join(self.repo, "snapshots", IDS[0] + ".json"), "w") as f:
            json.dump({"format": 1, "id": IDS[0], "agent": "kevin", "created_at": "2026-12-05T07:00:00Z",
                       "archive": IDS[0] + ".tar.zst"}, f)
        open(os.path.join(self.repo, "snapshots", IDS[0] + ".tar.zst"), "wb").close()
        code, err = run(self.repo, "latest", self.target)
        self.assertEqual(code, 2, err)
        self.assertIn("| tar -x", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
