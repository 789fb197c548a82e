#!/usr/bin/env python3
"""Builds a format-2 ("packs") agentbak repository by hand, per docs/format.md "Format 2", for
the unit tests of scripts/recover.py (tests/recover/test_recover_unit.py).

It is an independent writer of the format: the stock `zstd` binary makes each blob (one frame
with its content size and checksum), `age` encrypts whole packs, chunks are cut at fixed
boundaries (any cut is valid for a reader), and chunk ids are sha256 of the chunk (64 hex
digits like the real keyed blake3: a reader cannot and need not recompute them). blake3 sums
(the tree's, each file's, the refs file's, pack ids) come from `b3sum` when it is on PATH, else
they are placeholders that recover.py does not check either (it checks them only with b3sum).

Usage as a script: make_fixture.py OUT [--recipient AGE_PUBLIC_KEY]
    writes OUT/state (a sample agent state) and OUT/repo (two snapshots of it, the second after
    a change, sharing most chunks), and prints {"snapshots": [id1, id2]} on stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys

CHUNK = 64 * 1024
TREE_CHUNK = 1024
PACK_LIMIT = 48 * 1024


def b3(data: bytes) -> str:
    if shutil.which("b3sum") is None:
        return "0" * 64
    return subprocess.run(["b3sum", "--no-names"], input=data, stdout=subprocess.PIPE, check=True).stdout.decode().strip()


def compress(raw: bytes) -> bytes:
    return subprocess.run(
        ["zstd", "-q", "-c", "-3", f"--stream-size={len(raw)}"], input=raw, stdout=subprocess.PIPE, check=True
    ).stdout


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class RepoWriter:
    """Writes chunks into packs, then one snapshot's index file, refs and sidecar."""

    def __init__(self, repo: str, recipient: str | None = None, pack_limit: int = PACK_LIMIT):
        self.repo = repo
        self.recipient = recipient
        self.pack_limit = pack_limit
        for d in ("packs", "index", "snapshots", "tmp"):
            os.makedirs(os.path.join(repo, d), mode=0o700, exist_ok=True)
        config = os.path.join(repo, "config.json")
        if not os.path.exists(config):
            write(config, json.dumps({
                "format": 2, "id": hashlib.sha256(repo.encode()).hexdigest()[:32],
                "chunker": {"min": 65536, "avg": 262144, "max": 1048576},
            }).encode())
        self.known: set[str] = set()
        for name in os.listdir(os.path.join(repo, "index")):
            with open(os.path.join(repo, "index", name)) as f:
                for pack in json.load(f)["packs"]:
                    self.known.update(b[0] for b in pack["blobs"])
        self.reset()

    def reset(self) -> None:
        self.buf = bytearray()
        self.blobs: list[list] = []
        self.packs: list[dict] = []
        self.refs: set[str] = set()
        self.stored = {"chunks": 0, "new_chunks": 0, "new_bytes": 0, "stored_bytes": 0, "packs": 0, "reused_files": 0}

    def add(self, raw: bytes) -> str:
        cid = hashlib.sha256(raw).hexdigest()
        self.refs.add(cid)
        self.stored["chunks"] = len(self.refs)  # distinct ids, as the refs file holds them
        if cid in self.known:
            return cid
        self.known.add(cid)
        blob = compress(raw)
        self.blobs.append([cid, len(self.buf), len(blob), len(raw)])
        self.buf += blob
        self.stored["new_chunks"] += 1
        self.stored["new_bytes"] += len(raw)
        self.stored["stored_bytes"] += len(blob)
        if len(self.buf) >= self.pack_limit:
            self.close_pack()
        return cid

    def close_pack(self) -> None:
        if not self.blobs:
            return
        data = bytes(self.buf)
        if self.recipient:
            data = subprocess.run(["age", "-r", self.recipient], input=data, stdout=subprocess.PIPE, check=True).stdout
        pid = b3(data) if shutil.which("b3sum") else hashlib.sha256(data).hexdigest()
        folder = os.path.join(self.repo, "packs", pid[:2])
        os.makedirs(folder, mode=0o700, exist_ok=True)
        write(os.path.join(folder, pid + (".age" if self.recipient else "")), data)
        self.packs.append({"id": pid, "size": len(data), "encrypted": bool(self.recipient), "blobs": self.blobs})
        self.stored["packs"] += 1
        self.buf, self.blobs = bytearray(), []

    def snapshot(self, sid: str, entries: list[dict], contents: dict[str, bytes], agent: str = "kevin",
                 created: str = "2026-12-05T07:00:00Z", tree_override: bytes | None = None) -> dict:
        """Stores `entries` (index entries, in order) with `contents` (archive path -> bytes)."""
        files = {}
        for e in entries:
            if e["type"] == "file":
                data = contents[e["path"]]
                files[e["path"]] = {"chunks": [self.add(c) for c in cut(data, CHUNK)]}
        index = {
            "format": 1, "tool_version": "0.1.0", "agent": agent, "snapshot_id": sid,
            "created_at": created, "entries": entries, "secrets": [],
        }
        tree = tree_override or json.dumps({"format": 2, "index": index, "files": files}).encode()
        tree_chunks = [self.add(c) for c in cut(tree, TREE_CHUNK)]
        self.close_pack()
        write(os.path.join(self.repo, "index", sid + ".json"), json.dumps({"format": 2, "packs": self.packs}).encode())
        refs = b"".join(bytes.fromhex(c) for c in sorted(self.refs))
        write(os.path.join(self.repo, "snapshots", sid + ".refs"), refs)
        counts = {
            "files": sum(e["type"] == "file" for e in entries), "dirs": sum(e["type"] == "dir" for e in entries),
            "symlinks": sum(e["type"] == "symlink" for e in entries),
            "bytes": sum(e.get("size", 0) for e in entries if e["type"] == "file"), "secrets": 0,
        }
        sidecar = {
            "format": 2, "id": sid, "agent": agent, "host": "fixture", "created_at": created, "tags": [],
            "tool_version": "0.1.0", "archive": sid + ".refs", "size": len(refs), "blake3": b3(refs),
            "counts": counts, "encrypted": bool(self.recipient), "degraded": [],
            "tree": {"chunks": tree_chunks, "size": len(tree), "blake3": b3(tree)},
            "stored": self.stored, "chunk_key": "0123456789abcdef",
        }
        write(os.path.join(self.repo, "snapshots", sid + ".json"), json.dumps(sidecar, indent=2).encode())
        self.reset()
        return sidecar


def write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def walk(state: str) -> tuple[list[dict], dict[str, bytes]]:
    """Index entries (the state folder first, then depth-first in name order) and contents."""
    entries, contents = [], {}

    def visit(path: str, arch: str) -> None:
        st = os.lstat(path)
        base = {"path": arch, "mode": stat.S_IMODE(st.st_mode), "size": 0, "mtime": int(st.st_mtime)}
        if stat.S_ISLNK(st.st_mode):
            entries.append({**base, "type": "symlink", "link": os.readlink(path)})
        elif stat.S_ISDIR(st.st_mode):
            entries.append({**base, "type": "dir"})
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name), f"{arch}/{name}")
        else:
            with open(path, "rb") as f:
                data = f.read()
            entries.append({**base, "type": "file", "size": len(data), "blake3": b3(data)})
            contents[arch] = data

    visit(state, "state")
    return entries, contents


def make_state(state: str) -> None:
    """A small agent state: nested folders, a symlink, an empty file, binary data, a file of
    several chunks, two files with the same content (shared chunks), odd modes and mtimes."""
    os.makedirs(os.path.join(state, "config"), mode=0o700)
    os.makedirs(os.path.join(state, "memory", "deep", "er"), mode=0o750)
    files = {
        "config/credentials.json": b'{"openai": {"api_key": "+agentbak:local:openai:api_key+"}}\n',
        "memory/notes.md": b"# notes\n" + b"remember the milk\n" * 50,
        "memory/deep/er/big.jsonl": b"".join(b'{"n": %d, "text": "line %d of the log"}\n' % (i, i * 7) for i in range(9000)),
        "memory/copy.md": b"# notes\n" + b"remember the milk\n" * 50,
        "empty": b"",
        "blob.bin": random.Random(7).randbytes(200_000),
        "name with spaces & ünïcode.txt": "odd name\n".encode(),
    }
    for rel, data in files.items():
        with open(os.path.join(state, rel), "wb") as f:
            f.write(data)
    os.symlink("../config/credentials.json", os.path.join(state, "memory", "creds"))
    os.symlink("memory/deep", os.path.join(state, "deeplink"))
    os.chmod(os.path.join(state, "config/credentials.json"), 0o600)
    os.chmod(os.path.join(state, "memory/notes.md"), 0o640)
    os.chmod(os.path.join(state, "blob.bin"), 0o755)
    t = 1_790_000_000
    for i, (dirpath, dirnames, filenames) in enumerate(sorted(os.walk(state, topdown=False))):
        for j, name in enumerate(sorted(dirnames + filenames)):
            os.utime(os.path.join(dirpath, name), (t, t + 1000 * i + j), follow_symlinks=False)
    for dirpath, _, _ in sorted(os.walk(state, topdown=False), key=lambda w: -w[0].count("/")):
        os.utime(dirpath, (t, t + 77 + dirpath.count("/")))


def main(argv: list[str]) -> int:
    out = argv[0]
    recipient = argv[argv.index("--recipient") + 1] if "--recipient" in argv else None
    state, repo = os.path.join(out, "state"), os.path.join(out, "repo")
    make_state(state)
    writer = RepoWriter(repo, recipient)
    entries, contents = walk(state)
    ids = ["20261205T070000Z-aaaaaaaa", "20261205T080000Z-bbbbbbbb"]
    writer.snapshot(ids[0], entries, contents)
    with open(os.path.join(state, "memory/notes.md"), "ab") as f:
        f.write(b"one more line\n")
    os.utime(os.path.join(state, "memory/notes.md"), (1_790_000_000, 1_790_009_999))
    os.utime(os.path.join(state, "memory"), (1_790_000_000, 1_790_000_555))
    entries, contents = walk(state)
    writer.snapshot(ids[1], entries, contents, created="2026-12-05T08:00:00Z")
    print(json.dumps({"snapshots": ids}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
