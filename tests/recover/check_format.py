#!/usr/bin/env python3
"""Checks a format-2 repository written by the real `agentbak snapshot` against docs/format.md
"Format 2", field by field. Run by test_recover.sh after two snapshots:

    check_format.py REPO plain|encrypted ID1 ID2 [--identity FILE]

ID1 is the first snapshot of the repository, ID2 the second, made after a change to a few
files (so that it reuses the other files and shares chunks with ID1). Exit 0 when everything
matches; otherwise each difference on stderr and exit 1. Needs zstd, age (for an encrypted
repository) and b3sum (the blake3 checks are skipped, with a note, without it).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("recover", os.path.join(HERE, "..", "..", "scripts", "recover.py"))
recover = importlib.util.module_from_spec(spec)
sys.modules["recover"] = recover
spec.loader.exec_module(recover)

HEX64 = re.compile(r"[0-9a-f]{64}")
SIDECAR_KEYS = {
    "format", "id", "agent", "host", "created_at", "tags", "tool_version", "archive", "size", "blake3",
    "counts", "encrypted", "degraded", "tree", "stored", "chunk_key",
}
STORED_KEYS = {"chunks", "new_chunks", "new_bytes", "stored_bytes", "packs", "reused_files"}
PACK_TARGET = 16 << 20

# A bug of agentbak 0.1.0 the main session fixes: `Chunker::finish` (src/ops/snapshot/packs.rs)
# reads the pack writer's stats before `finish()` drains the compression threads, so
# `stored.stored_bytes` and `stored.packs` miss the blobs still in flight (often the tree's:
# `"packs": 0` for a snapshot that wrote one pack). While True, those two differences are
# printed as KNOWN BUG and do not fail; set it to False with the fix.
STORED_TOTALS_BUG = False

problems: list[str] = []
known: list[str] = []


def check(ok: bool, what: str, known_bug: bool = False) -> bool:
    if not ok:
        (known if known_bug and STORED_TOTALS_BUG else problems).append(what)
    return ok


def b3(data: bytes) -> str | None:
    if shutil.which("b3sum") is None:
        return None
    return subprocess.run(["b3sum", "--no-names"], input=data, stdout=subprocess.PIPE, check=True).stdout.decode().strip()


def plaintext(path: str, encrypted: bool, identity: str | None) -> bytes:
    if not encrypted:
        with open(path, "rb") as f:
            return f.read()
    run = subprocess.run(["age", "-d", "-i", identity, path], stdout=subprocess.PIPE, check=True)
    return run.stdout


def frame_flags(blob: bytes) -> tuple[bool, bool]:
    """(states its content size, has a content checksum) of a zstd frame."""
    assert struct.unpack_from("<I", blob, 0)[0] == 0xFD2FB528, "not a zstd frame"
    fhd = blob[4]
    fcs_flag, single, checksum = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1
    return (fcs_flag != 0 or single == 1), checksum == 1


def main(argv: list[str]) -> int:
    repo, mode, id1, id2 = argv[:4]
    identity = argv[argv.index("--identity") + 1] if "--identity" in argv else None
    encrypted = mode == "encrypted"
    if b3(b"") is None:
        print("   check_format: b3sum is not on PATH: pack ids and refs blake3 not checked", file=sys.stderr)

    # Files 0600, folders 0700.
    for dirpath, dirnames, filenames in os.walk(repo):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            check(stat.S_IMODE(st.st_mode) == want, f"{path}: mode {stat.S_IMODE(st.st_mode):o}, expected {want:o}")

    with open(os.path.join(repo, "config.json")) as f:
        config = json.load(f)
    check(set(config) == {"format", "id", "chunker"}, f"config.json has the keys {sorted(config)}")
    check(config.get("format") == 2, "config.json: format is not 2")
    check(re.fullmatch(r"[0-9a-f]{32}", str(config.get("id"))) is not None, "config.json: id is not 32 hex")
    check(config.get("chunker") == {"min": 65536, "avg": 262144, "max": 1048576}, f"config.json: chunker {config.get('chunker')}")

    # Index files: one per snapshot that added a pack, named after it; packs as they list them.
    listed: dict[str, tuple[str, list]] = {}  # chunk -> (pack id, blob)
    index_files = sorted(glob.glob(os.path.join(repo, "index", "*")))
    per_file: dict[str, dict] = {}
    for path in index_files:
        check(path.endswith(".json"), f"{path}: an index file not ending in .json")
        with open(path) as f:
            doc = json.load(f)
        per_file[os.path.basename(path)[: -len(".json")]] = doc
        check(set(doc) == {"format", "packs"} and doc["format"] == 2, f"{path}: keys {sorted(doc)}, format {doc.get('format')}")
        for pack in doc["packs"]:
            check(set(pack) == {"id", "size", "encrypted", "blobs"}, f"{path}: a pack with the keys {sorted(pack)}")
            pid = pack["id"]
            check(pack["encrypted"] == encrypted, f"{path}: pack {pid} encrypted={pack['encrypted']}")
            file = os.path.join(repo, "packs", pid[:2], pid + (".age" if pack["encrypted"] else ""))
            if not check(os.path.isfile(file), f"{file}: missing"):
                continue
            with open(file, "rb") as f:
                stored = f.read()
            check(len(stored) == pack["size"], f"{file}: {len(stored)} bytes, the index says {pack['size']}")
            digest = b3(stored)
            check(digest in (None, pid), f"{file}: blake3 {digest}, not its name")
            plain = plaintext(file, pack["encrypted"], identity)
            at = 0
            for blob in pack["blobs"]:
                cid, offset, length, raw = blob
                check(HEX64.fullmatch(cid) is not None, f"{file}: chunk id {cid!r}")
                check(offset == at, f"{file}: blob of {cid} at {offset}, expected {at} (blobs back to back)")
                at = offset + length
                frame = plain[offset : offset + length]
                has_size, has_checksum = frame_flags(frame)
                check(has_size and has_checksum, f"{file}: the blob of {cid} lacks its content size or checksum")
                check(recover.frame_content_size(frame, cid) == raw, f"{file}: the frame of {cid} does not state {raw}")
                listed.setdefault(cid, (pid, blob))
            check(at == len(plain), f"{file}: {len(plain)} bytes of plaintext, its blobs end at {at}")
            # A pack is closed at 16 MiB of blobs: only the last of an index file is smaller.
            if pack is not doc["packs"][-1]:
                check(at >= PACK_TARGET, f"{file}: closed at {at} bytes, below 16 MiB")

    all_packs = {os.path.basename(p) for p in glob.glob(os.path.join(repo, "packs", "*", "*"))}
    indexed_packs = {p["id"] + (".age" if p["encrypted"] else "") for d in per_file.values() for p in d["packs"]}
    check(all_packs == indexed_packs, f"pack files {sorted(all_packs ^ indexed_packs)} are not both on disk and indexed")

    packs = recover.Packs(repo, identity)
    packs.load_index()
    refs_of = {}
    try:
        for n, sid in enumerate((id1, id2)):
            with open(os.path.join(repo, "snapshots", sid + ".json")) as f:
                sidecar = json.load(f)
            at = f"snapshots/{sid}.json"
            check(set(sidecar) - {"signature"} == SIDECAR_KEYS, f"{at}: keys {sorted(sidecar)}")
            check(sidecar["format"] == 2 and sidecar["id"] == sid, f"{at}: format or id")
            check(sidecar["archive"] == sid + ".refs", f"{at}: archive {sidecar['archive']}")
            check(sidecar["encrypted"] == encrypted, f"{at}: encrypted {sidecar['encrypted']}")
            check(re.fullmatch(r"[0-9a-f]{16}", sidecar["chunk_key"]) is not None, f"{at}: chunk_key")
            check(set(sidecar["tree"]) == {"chunks", "size", "blake3"}, f"{at}: tree keys {sorted(sidecar['tree'])}")
            stored = sidecar["stored"]
            check(set(stored) == STORED_KEYS, f"{at}: stored keys {sorted(stored)}")

            with open(os.path.join(repo, "snapshots", sid + ".refs"), "rb") as f:
                refs_bytes = f.read()
            check(len(refs_bytes) == sidecar["size"], f"{at}: size {sidecar['size']}, the refs file has {len(refs_bytes)}")
            check(b3(refs_bytes) in (None, sidecar["blake3"]), f"{at}: blake3 is not the refs file's")
            ids = [refs_bytes[i : i + 32] for i in range(0, len(refs_bytes), 32)]
            check(len(refs_bytes) % 32 == 0, f"{sid}.refs: not 32-byte ids")
            check(all(a < b for a, b in zip(ids, ids[1:])), f"{sid}.refs: not sorted and deduplicated")
            refs = {i.hex() for i in ids}
            refs_of[sid] = refs
            check(stored["chunks"] == len(ids), f"{at}: stored.chunks {stored['chunks']}, the refs hold {len(ids)}")
            missing = sorted(refs - set(listed))
            check(not missing, f"{sid}.refs: {len(missing)} chunks in no index file")

            tree = recover.read_tree(packs, sidecar)
            check(set(tree) == {"format", "index", "files"}, f"{sid}: tree keys {sorted(tree)}")
            check(tree["index"].get("format") == 1, f"{sid}: tree.index.format {tree['index'].get('format')}")
            file_paths = [e["path"] for e in tree["index"]["entries"] if e["type"] == "file"]
            check(sorted(tree["files"]) == sorted(file_paths), f"{sid}: tree.files is not one record per file entry")
            check(all(set(r) == {"chunks"} for r in tree["files"].values()), f"{sid}: a files record with other keys")
            needed = set(sidecar["tree"]["chunks"]) | {c for r in tree["files"].values() for c in r["chunks"]}
            check(refs == needed, f"{sid}.refs: {len(refs ^ needed)} ids differ from the tree's and the files' chunks")
            check(sidecar["counts"]["files"] == len(file_paths), f"{at}: counts.files")
            # What test_recover.sh means to exercise: a tree of several chunks, set-ID bits.
            check(len(sidecar["tree"]["chunks"]) >= 2, f"{sid}: a tree of one chunk; the test wants several")
            modes = {e["path"]: e["mode"] for e in tree["index"]["entries"]}
            check(modes.get("state/bin/suid.sh") == 0o4755, f"{sid}: state/bin/suid.sh is not 4755 in the index")
            check(sidecar["counts"]["bytes"] == sum(e["size"] for e in tree["index"]["entries"] if e["type"] == "file"), f"{at}: counts.bytes")

            # What the snapshot added: exactly its own index file's packs and blobs.
            added = per_file.get(sid)
            if stored["new_chunks"] == 0:
                check(added is None, f"index/{sid}.json: written for a snapshot that added nothing")
                continue
            if not check(added is not None, f"index/{sid}.json: missing, the snapshot added {stored['new_chunks']} chunks"):
                continue
            blobs = [b for p in added["packs"] for b in p["blobs"]]
            check(stored["new_chunks"] == len(blobs), f"{at}: stored.new_chunks {stored['new_chunks']}, its index file lists {len(blobs)}")
            check(stored["new_bytes"] == sum(b[3] for b in blobs), f"{at}: stored.new_bytes {stored['new_bytes']}, its blobs hold {sum(b[3] for b in blobs)}")
            check(stored["stored_bytes"] == sum(b[2] for b in blobs), f"{at}: stored.stored_bytes {stored['stored_bytes']}, its blobs take {sum(b[2] for b in blobs)}", known_bug=True)
            check(stored["packs"] == len(added["packs"]), f"{at}: stored.packs {stored['packs']}, its index file lists {len(added['packs'])}", known_bug=True)
            check((stored["reused_files"] == 0) == (n == 0), f"{at}: stored.reused_files {stored['reused_files']}")
    finally:
        packs.close()

    check(sorted(per_file) == sorted(s for s in (id1, id2) if s in per_file), f"index files {sorted(per_file)} not named after snapshots")
    a, b = refs_of[id1], refs_of[id2]
    check(len(a) >= 8, f"only {len(a)} chunks for a 6 MiB file and more")
    check(len(a & b) >= len(a) - 6, f"the snapshots share only {len(a & b)} of {len(a)} chunks")
    for p in known:
        print(f"   format: KNOWN BUG (src/ops/snapshot/packs.rs, Chunker::finish): {p}", file=sys.stderr)
    for p in problems:
        print(f"   format: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"   format: as documented; {len(a)} and {len(b)} chunks, {len(a & b)} shared, {len(listed)} in the index", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
