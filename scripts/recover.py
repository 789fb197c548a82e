#!/usr/bin/env python3
"""Rebuild a snapshot of an agentbak format-2 ("packs") repository without agentbak.

Usage:
    scripts/recover.py REPO SNAPSHOT TARGET [--identity FILE] [--agent NAME]

SNAPSHOT is an id, a unique prefix of one, or `latest` (the newest by `created_at`, as agentbak
names it; snapshots whose sidecar is unreadable or whose refs file is missing do not count).
TARGET receives the *contents* of the snapshot's `state/` folder, exactly as `agentbak restore
SNAPSHOT --target TARGET` without `--rehydrate` writes it: files with their placeholders,
folders, symlinks as stored (except those whose target leaves TARGET, which are skipped as
agentbak skips them), permission bits (set-user-ID and set-group-ID dropped) and modification
times from the snapshot's index.

Needs only python3 (3.11, standard library) and the stock `zstd` binary; `age` for an
encrypted repository (`--identity FILE`, an age identity file or an unencrypted OpenSSH key;
or the variable AGENTBAK_IDENTITY naming such a file). When `b3sum` is on PATH, the tree and
every file are checked against their blake3 from the sidecar and the index; otherwise those
checks are skipped (Python's hashlib has no blake3) and the script says so. The sidecar's
signature is never checked here: `agentbak verify` does that.

The repository is untrusted: paths outside `state/`, absolute paths, `..` or empty segments,
duplicate entries and entries below a symlink of the snapshot are refused; each blob must be
exactly one zstd frame that states its content size, equal to the size the index gives; files
are written into a fresh hidden folder beside TARGET (no symlink exists in it until every file
is written) which becomes TARGET with one rename at the end. TARGET must be absent or an empty
folder.

Exit codes: 0 recovered; 3 recovered, but a symlink leaving TARGET was skipped; 1 TARGET or
disk trouble; 2 usage (bad arguments, no identity for an encrypted snapshot, an unknown or
ambiguous snapshot name); 5 the repository is corrupt, incomplete (a missing pack or chunk)
or unsafe, or cannot be decrypted. See docs/format.md, "Format 2".
"""

from __future__ import annotations

import argparse
import calendar
import datetime
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

MODE_MASK = 0o1777
MAX_LINK_HOPS = 40
# Decompress at most this many raw bytes with one `zstd -d` call.
BATCH_RAW_BYTES = 32 * 1024 * 1024
# Keep at most this many bytes of decrypted packs in the private temporary folder.
DECRYPTED_CACHE_BYTES = 1024 * 1024 * 1024
ZSTD_MAGIC = 0xFD2FB528
HEX = set("0123456789abcdef")


class Corrupt(Exception):
    """The repository is corrupt, incomplete, unsafe or undecryptable (exit 5)."""


class Usage(Exception):
    """Bad arguments or a snapshot that cannot be named (exit 2)."""


class TargetError(Exception):
    """The target cannot be written (exit 1)."""


def warn(msg: str) -> None:
    print(f"recover: {msg}", file=sys.stderr)


def is_chunk_id(s: object) -> bool:
    return isinstance(s, str) and len(s) == 64 and set(s) <= HEX


def read_json(path: str, what: str) -> object:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise Corrupt(f"{path}: {what} is missing") from None
    except OSError as e:
        raise Corrupt(f"{path}: cannot read {what}: {e.strerror}") from None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Corrupt(f"{path}: {what} is not valid JSON: {e}") from None


# ---------------------------------------------------------------------------------------------
# The snapshot's sidecar


ARCHIVE_SUFFIXES = (".tar.zst.age", ".tar.zst", ".refs")
RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)")


def created_ns(value: object) -> int | None:
    """An RFC 3339 time (the sidecar's `created_at`) as nanoseconds since the epoch; None when
    it is not one. Python's datetime stops at microseconds; agentbak orders by nanoseconds."""
    m = RFC3339.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        secs = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        datetime.date(year, month, day)
    except (ValueError, OverflowError):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    frac = (m.group(7) or "")[:9].ljust(9, "0")
    return secs * 1_000_000_000 + int(frac)


def find_sidecar(repo: str, wanted: str, agent: str | None) -> dict:
    """The sidecar named by `wanted` (id, unique prefix, `latest`), among `agent`'s if given.

    Names resolve as agentbak resolves them: only complete snapshots count (a sidecar that
    parses, names its own id and an archive or refs file `<id>.…` that exists), ordered by
    `created_at`, then id (two snapshots of one second have ids in random order); `latest` is
    the last. A sidecar whose refs file is missing is still recovered when named by its full id.
    """
    folder = os.path.join(repo, "snapshots")
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        raise Usage(f"{folder}: no such folder; is {repo} an agentbak repository?") from None
    sidecars: dict[str, dict] = {}
    incomplete: dict[str, dict] = {}
    for name in names:
        if not name.endswith(".json"):
            continue
        sid = name[: -len(".json")]
        path = os.path.join(folder, name)
        try:
            doc = read_json(path, "a sidecar")
        except Corrupt as e:
            warn(f"{e}; ignored")
            continue
        archive = doc.get("archive") if isinstance(doc, dict) else None
        stem = next((archive[: -len(s)] for s in ARCHIVE_SUFFIXES if isinstance(archive, str) and archive.endswith(s)), None)
        if not isinstance(doc, dict) or doc.get("id") != sid or stem != sid:
            warn(f"{path}: not a sidecar of snapshot {sid} (it must name {sid} and its archive {sid}.…); ignored")
            continue
        created = created_ns(doc.get("created_at"))
        if created is None:
            warn(f"{path}: `created_at` is not an RFC 3339 time; ignored")
            continue
        if agent is not None and doc.get("agent") != agent:
            continue
        doc["_created_ns"] = created
        if os.path.isfile(os.path.join(folder, archive)):
            sidecars[sid] = doc
        else:
            incomplete[sid] = doc
    if wanted in incomplete:
        warn(f"{folder}/{incomplete[wanted]['archive']} is missing: agentbak does not list snapshot {wanted}; recovering it anyway")
        return incomplete[wanted]
    if not sidecars:
        raise Usage(f"{folder}: no complete snapshot" + (f" of agent {agent}" if agent else ""))
    if wanted == "latest":
        agents = {d.get("agent") for d in sidecars.values()}
        if len(agents) > 1:
            raise Usage(
                f"{folder} holds snapshots of several agents ({', '.join(sorted(map(str, agents)))});"
                " name one with --agent"
            )
        return max(sidecars.values(), key=lambda d: (d["_created_ns"], d["id"]))
    if wanted in sidecars:
        return sidecars[wanted]
    matches = [s for s in sidecars if wanted and s.startswith(wanted)]
    if len(matches) == 1:
        return sidecars[matches[0]]
    if not matches:
        raise Usage(f"no snapshot {wanted!r} in {folder}")
    raise Usage(f"{wanted!r} names {len(matches)} snapshots ({', '.join(matches[:5])}…); give more of the id")


# ---------------------------------------------------------------------------------------------
# zstd frames


def frame_content_size(blob: bytes, where: str) -> int:
    """Checks that `blob` is exactly one zstd frame that states its content size; returns it."""

    def need(n: int, pos: int) -> None:
        if pos + n > len(blob):
            raise Corrupt(f"{where}: the blob ends inside its zstd frame")

    need(6, 0)
    if struct.unpack_from("<I", blob, 0)[0] != ZSTD_MAGIC:
        raise Corrupt(f"{where}: the blob is not a zstd frame")
    fhd = blob[4]
    fcs_flag, single, reserved, checksum, did_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 3) & 1, (fhd >> 2) & 1, fhd & 3
    if reserved:
        raise Corrupt(f"{where}: the zstd frame header sets a reserved bit")
    if did_flag:
        raise Corrupt(f"{where}: the zstd frame needs a dictionary")
    pos = 5 + (0 if single else 1)
    fcs_len = [1 if single else 0, 2, 4, 8][fcs_flag]
    if fcs_len == 0:
        raise Corrupt(f"{where}: the zstd frame does not state its content size")
    need(fcs_len, pos)
    size = int.from_bytes(blob[pos : pos + fcs_len], "little")
    if fcs_len == 2:
        size += 256
    pos += fcs_len
    while True:
        need(3, pos)
        header = int.from_bytes(blob[pos : pos + 3], "little")
        pos += 3
        last, kind, bsize = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise Corrupt(f"{where}: the zstd frame holds a reserved block type")
        pos += 1 if kind == 1 else bsize
        need(0, pos)
        if last:
            break
    pos += 4 if checksum else 0
    need(0, pos)
    if pos != len(blob):
        raise Corrupt(f"{where}: the blob holds {len(blob) - pos} bytes after its zstd frame")
    return size


def zstd_decompress(data: bytes, expected: int, where: str) -> bytes:
    """Decompresses concatenated frames with one `zstd -d` call; checks the output's length."""
    try:
        run = subprocess.run(
            ["zstd", "-d", "-c", "-q"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise Usage("the `zstd` binary is not on PATH") from None
    if run.returncode != 0:
        detail = run.stderr.decode(errors="replace").strip().splitlines()
        raise Corrupt(f"{where}: zstd cannot decompress it: {detail[-1] if detail else 'failed'}")
    if len(run.stdout) != expected:
        raise Corrupt(f"{where}: decompressed to {len(run.stdout)} bytes, expected {expected}")
    return run.stdout


# ---------------------------------------------------------------------------------------------
# Packs and the chunk index


@dataclass
class Location:
    pack: str
    size: int
    encrypted: bool
    offset: int
    length: int
    raw: int


@dataclass
class Packs:
    repo: str
    identity: str | None
    tmp: str | None = None
    chunks: dict[str, list[Location]] = field(default_factory=dict)
    # pack id -> path of its plaintext (the pack itself, or a decrypted copy in `tmp`)
    plain: dict[str, str] = field(default_factory=dict)
    decrypted_bytes: int = 0
    decrypted_order: list[str] = field(default_factory=list)
    handles: dict[str, object] = field(default_factory=dict)

    def load_index(self) -> None:
        folder = os.path.join(self.repo, "index")
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        except FileNotFoundError:
            raise Corrupt(f"{folder}: the index folder is missing") from None
        for name in names:
            path = os.path.join(folder, name)
            doc = read_json(path, "an index file")
            if not isinstance(doc, dict) or doc.get("format") != 2 or not isinstance(doc.get("packs"), list):
                raise Corrupt(f"{path}: not a format-2 index file")
            for i, pack in enumerate(doc["packs"]):
                at = f"{path}: packs[{i}]"
                if not isinstance(pack, dict) or not is_chunk_id(pack.get("id")):
                    raise Corrupt(f"{at}: no valid pack id")
                enc, size, blobs = pack.get("encrypted"), pack.get("size"), pack.get("blobs")
                size_ok = isinstance(size, int) and not isinstance(size, bool) and size >= 0
                if not isinstance(enc, bool) or not size_ok or not isinstance(blobs, list):
                    raise Corrupt(f"{at}: `encrypted`, `size` or `blobs` is missing or malformed")
                for j, blob in enumerate(blobs):
                    ok = (
                        isinstance(blob, list)
                        and len(blob) == 4
                        and is_chunk_id(blob[0])
                        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in blob[1:])
                    )
                    if not ok:
                        raise Corrupt(f"{at}.blobs[{j}]: not [chunk id, offset, length, raw length]")
                    loc = Location(pack["id"], size, enc, blob[1], blob[2], blob[3])
                    self.chunks.setdefault(blob[0], []).append(loc)

    def pack_path(self, loc: Location) -> str:
        name = loc.pack + (".age" if loc.encrypted else "")
        return os.path.join(self.repo, "packs", loc.pack[:2], name)

    def locate(self, chunk: str, where: str) -> Location:
        """A copy of `chunk` whose pack file exists, of the size its index says if one is (any
        copy serves; a pack of another size is refused when it is read)."""
        locs = self.chunks.get(chunk)
        if not locs:
            raise Corrupt(f"{where}: chunk {chunk} is in no index file of the repository")
        present = []
        for loc in locs:
            if loc.pack in self.plain:
                return loc
            try:
                size = os.path.getsize(self.pack_path(loc))
            except FileNotFoundError:
                continue
            if size == loc.size:
                return loc
            present.append(loc)
        if present:
            return present[0]
        missing = ", ".join(self.pack_path(loc) for loc in locs)
        raise Corrupt(f"{where}: chunk {chunk} is in pack files that are missing: {missing}")

    def _plaintext(self, loc: Location) -> str:
        if loc.pack in self.plain:
            return self.plain[loc.pack]
        path = self.pack_path(loc)
        stored = os.path.getsize(path)
        if stored != loc.size:
            raise Corrupt(f"{path}: the pack holds {stored} bytes, the index says {loc.size}")
        if not loc.encrypted:
            self.plain[loc.pack] = path
            return path
        if self.identity is None:
            raise Usage(f"{path} is encrypted: pass --identity FILE (or set AGENTBAK_IDENTITY)")
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="agentbak-recover-")  # 0700
        out = os.path.join(self.tmp, loc.pack)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                run = subprocess.run(["age", "-d", "-i", self.identity, path], stdout=f, stderr=subprocess.PIPE)
        except FileNotFoundError:
            os.unlink(out)
            raise Usage("the `age` binary is not on PATH (needed for an encrypted repository)") from None
        if run.returncode != 0:
            os.unlink(out)
            detail = run.stderr.decode(errors="replace").strip().splitlines()
            raise Corrupt(f"{path}: age cannot decrypt it: {detail[-1] if detail else 'failed'}")
        self.plain[loc.pack] = out
        size = os.path.getsize(out)
        self.decrypted_bytes += size
        self.decrypted_order.append(loc.pack)
        # Keep the private copies within bounds: the oldest decrypted packs go first.
        while self.decrypted_bytes > DECRYPTED_CACHE_BYTES and len(self.decrypted_order) > 1:
            old = self.decrypted_order.pop(0)
            self._close(old)
            self.decrypted_bytes -= os.path.getsize(self.plain[old])
            os.unlink(self.plain.pop(old))
        return out

    def _close(self, pack: str) -> None:
        handle = self.handles.pop(pack, None)
        if handle is not None:
            handle.close()

    def read_blob(self, chunk: str, where: str) -> tuple[bytes, int]:
        """The stored bytes of `chunk` (checked to be one zstd frame) and its raw length."""
        loc = self.locate(chunk, where)
        path = self._plaintext(loc)
        handle = self.handles.get(loc.pack)
        if handle is None:
            if len(self.handles) >= 64:
                self._close(next(iter(self.handles)))
            handle = self.handles[loc.pack] = open(path, "rb")
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        at = f"{where}: chunk {chunk} at {self.pack_path(loc)}[{loc.offset}..+{loc.length}]"
        if loc.offset + loc.length > size:
            raise Corrupt(f"{at}: beyond the pack's end ({size} bytes)")
        handle.seek(loc.offset)
        blob = handle.read(loc.length)
        declared = frame_content_size(blob, at)
        if declared != loc.raw:
            raise Corrupt(f"{at}: the frame holds {declared} bytes, the index says {loc.raw}")
        return blob, loc.raw

    def close(self) -> None:
        for pack in list(self.handles):
            self._close(pack)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


# ---------------------------------------------------------------------------------------------
# blake3 through b3sum, when available


def b3sum_bytes(data: bytes) -> str | None:
    if shutil.which("b3sum") is None:
        return None
    run = subprocess.run(["b3sum", "--no-names"], input=data, stdout=subprocess.PIPE, check=True)
    return run.stdout.decode().strip()


def b3sum_files(paths: list[str]) -> list[str] | None:
    if shutil.which("b3sum") is None:
        return None
    out: list[str] = []
    for i in range(0, len(paths), 256):
        batch = paths[i : i + 256]
        run = subprocess.run(["b3sum", "--no-names", "--", *batch], stdout=subprocess.PIPE, check=True)
        out.extend(run.stdout.decode().split())
    if len(out) != len(paths):
        raise Corrupt("b3sum returned fewer sums than files")
    return out


# ---------------------------------------------------------------------------------------------
# Paths


def relative(path: object) -> str | None:
    """`state/a/b` -> `a/b`, `state` -> ``; None for anything else (unsafe)."""
    if not isinstance(path, str) or "\0" in path:
        return None
    if path == "state":
        return ""
    if not path.startswith("state/"):
        return None
    rel = path[len("state/") :]
    if any(seg in ("", ".", "..") for seg in rel.split("/")):
        return None
    return rel


def parents(rel: str) -> list[str]:
    """The proper ancestors of `rel` below the root (`a/b/c` -> `a/b`, `a`)."""
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def link_escapes(link: str, target: str, links: dict[str, str]) -> str | None:
    """Why the symlink at `link` -> `target` leaves the root, resolving through the snapshot's
    other links as the kernel will (agentbak's safe_path::check_link); None when it stays."""
    if target.startswith("/"):
        return "the link's target leaves the restored folder"
    at = link.split("/")[:-1]
    pending = [p for p in target.split("/") if p not in ("", ".")]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not at:
                return "the link's target leaves the restored folder"
            at.pop()
            continue
        at.append(part)
        nxt = links.get("/".join(at))
        if nxt is not None:
            hops += 1
            if hops > MAX_LINK_HOPS:
                return f"the link's target is a chain of more than {MAX_LINK_HOPS} links"
            at.pop()
            if nxt.startswith("/"):
                return "the link's target leaves the restored folder"
            pending[:0] = [p for p in nxt.split("/") if p not in ("", ".")]
    return None


# ---------------------------------------------------------------------------------------------
# The tree


def read_tree(packs: Packs, sidecar: dict) -> dict:
    tree_ref = sidecar.get("tree")
    sid = sidecar["id"]
    if not isinstance(tree_ref, dict) or not isinstance(tree_ref.get("chunks"), list):
        raise Corrupt(f"snapshot {sid}: the sidecar has no `tree.chunks`")
    size, digest = tree_ref.get("size"), tree_ref.get("blake3")
    if not isinstance(size, int) or size < 0:
        raise Corrupt(f"snapshot {sid}: the sidecar's `tree.size` is malformed")
    blobs, raw = [], 0
    for i, chunk in enumerate(tree_ref["chunks"]):
        if not is_chunk_id(chunk):
            raise Corrupt(f"snapshot {sid}: tree.chunks[{i}] is not a chunk id")
        blob, n = packs.read_blob(chunk, f"the tree of {sid}")
        raw += n
        if raw > size:
            raise Corrupt(f"snapshot {sid}: the tree's chunks hold more than its size, {size} bytes")
        blobs.append(blob)
    if raw != size:
        raise Corrupt(f"snapshot {sid}: the tree's chunks hold {raw} bytes, the sidecar says {size}")
    data = zstd_decompress(b"".join(blobs), size, f"the tree of {sid}") if blobs else b""
    actual = b3sum_bytes(data)
    if actual is None:
        warn("b3sum is not on PATH and Python's hashlib has no blake3: the tree's and the files' blake3 are not checked")
    elif actual != digest:
        raise Corrupt(f"snapshot {sid}: the tree's blake3 is {actual}, the sidecar says {digest}")
    try:
        tree = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Corrupt(f"snapshot {sid}: the tree is not valid JSON: {e}") from None
    if not isinstance(tree, dict) or tree.get("format") != 2:
        raise Corrupt(f"snapshot {sid}: the tree is not a format-2 tree")
    index, files = tree.get("index"), tree.get("files")
    if not isinstance(index, dict) or not isinstance(index.get("entries"), list) or not isinstance(files, dict):
        raise Corrupt(f"snapshot {sid}: the tree lacks `index.entries` or `files`")
    if index.get("snapshot_id") != sid:
        raise Corrupt(f"snapshot {sid}: the tree belongs to another snapshot ({index.get('snapshot_id')!r})")
    return tree


@dataclass
class Entry:
    rel: str
    kind: str
    mode: int
    mtime: int
    size: int = 0
    link: str = ""
    blake3: str | None = None
    chunks: list[str] = field(default_factory=list)


def plan(tree: dict, sid: str) -> list[Entry]:
    """Checks every entry of the tree (paths, types, chunk lists) before anything is written."""
    files = tree["files"]
    out: list[Entry] = []
    seen: set[str] = set()
    links: set[str] = set()
    file_paths: set[str] = set()
    file_rels: set[str] = set()
    below: set[str] = set()  # every proper ancestor of an entry in `seen`
    for i, e in enumerate(tree["index"]["entries"]):
        at = f"snapshot {sid}: index.entries[{i}]"
        if not isinstance(e, dict):
            raise Corrupt(f"{at}: not an object")
        path, kind = e.get("path"), e.get("type")
        rel = relative(path)
        if rel is None:
            raise Corrupt(f"{at}: unsafe path {path!r} (absolute, `..`, empty segment, or outside state/)")
        at = f"snapshot {sid}: {path}"
        if kind not in ("file", "dir", "symlink"):
            raise Corrupt(f"{at}: unknown type {kind!r}")
        if rel == "" and kind != "dir":
            raise Corrupt(f"{at}: the state folder itself is not a folder")
        if rel in seen or rel in links:
            raise Corrupt(f"{at}: a duplicate entry")
        if any(p in links for p in parents(rel)):
            raise Corrupt(f"{at}: it lies below a symlink of the snapshot")
        if any(p in file_rels for p in parents(rel)):
            raise Corrupt(f"{at}: it lies below a file of the snapshot")
        mode, mtime, size = e.get("mode"), e.get("mtime"), e.get("size", 0)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (mode, mtime, size)) or size < 0:
            raise Corrupt(f"{at}: `mode`, `mtime` or `size` is malformed")
        entry = Entry(rel, kind, mode, mtime, size)
        if kind == "symlink":
            link = e.get("link")
            if not isinstance(link, str) or link == "" or "\0" in link:
                raise Corrupt(f"{at}: a symlink without a valid `link`")
            if rel in below:
                raise Corrupt(f"{at}: a link over entries already listed")
            entry.link = link
            links.add(rel)
        else:
            seen.add(rel)
            below.update(parents(rel))
        if kind == "file":
            record = files.get(path)
            if not isinstance(record, dict) or not isinstance(record.get("chunks"), list):
                raise Corrupt(f"{at}: no chunk list in the tree's `files`")
            for j, c in enumerate(record["chunks"]):
                if not is_chunk_id(c):
                    raise Corrupt(f"{at}: chunks[{j}] is not a chunk id")
            entry.chunks = record["chunks"]
            entry.blake3 = e.get("blake3")
            file_paths.add(path)
            file_rels.add(rel)
        out.append(entry)
    if not out:
        raise Corrupt(f"snapshot {sid}: the index has no entry")
    extra = sorted(set(files) - file_paths)
    if extra:
        raise Corrupt(f"snapshot {sid}: the tree's `files` names {extra[0]!r}, which is no file entry of the index")
    return out


# ---------------------------------------------------------------------------------------------
# Writing


class Writer:
    """Appends decompressed chunks to files, batching many blobs into one `zstd -d` call."""

    def __init__(self, packs: Packs, root: str):
        self.packs = packs
        self.root = root
        self.blobs: list[bytes] = []
        self.pieces: list[tuple[str, int]] = []  # (relative path, raw length), in order
        self.raw = 0
        self.zstd_calls = 0

    def add(self, rel: str, chunk: str) -> None:
        blob, raw = self.packs.read_blob(chunk, f"state/{rel}")
        self.blobs.append(blob)
        self.pieces.append((rel, raw))
        self.raw += raw
        if self.raw >= BATCH_RAW_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.blobs:
            return
        where = f"the chunks of state/{self.pieces[0][0]}" + (
            f" to state/{self.pieces[-1][0]}" if self.pieces[-1][0] != self.pieces[0][0] else ""
        )
        data = zstd_decompress(b"".join(self.blobs), self.raw, where)
        self.zstd_calls += 1
        view = memoryview(data)
        pos = 0
        current, fd = None, -1
        try:
            for rel, n in self.pieces:
                if rel != current:
                    if fd >= 0:
                        os.close(fd)
                    fd = os.open(os.path.join(self.root, rel), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
                    current = rel
                write_all_bytes(fd, view[pos : pos + n])
                pos += n
        finally:
            if fd >= 0:
                os.close(fd)
        self.blobs, self.pieces, self.raw = [], [], 0


def write_all_bytes(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def recover(args: argparse.Namespace) -> int:
    repo = args.repo
    config_path = os.path.join(repo, "config.json")
    if os.path.exists(config_path):
        config = read_json(config_path, "the repository's config")
        if not isinstance(config, dict) or config.get("format") != 2:
            raise Corrupt(f"{config_path}: not a format-2 repository config")
    sidecar = find_sidecar(repo, args.snapshot, args.agent)
    sid = sidecar["id"]
    if sidecar.get("format") != 2:
        raise Usage(
            f"snapshot {sid} is a format-{sidecar.get('format')} archive, not format 2: recover it with "
            f"`zstd -d < {repo}/snapshots/{sidecar.get('archive')} | tar -x` (after `age -d -i FILE` "
            "when it ends in .age); see docs/format.md"
        )
    if sidecar.get("signature"):
        warn(f"snapshot {sid} is signed; this script does not check signatures (`agentbak verify` does)")
    identity = args.identity or os.environ.get("AGENTBAK_IDENTITY")
    if identity is not None and not os.path.isfile(identity):
        raise Usage(f"identity {identity}: no such file (recover.py takes an identity file, not a handle)")
    if sidecar.get("encrypted") and identity is None:
        raise Usage(f"snapshot {sid} is encrypted: pass --identity FILE (or set AGENTBAK_IDENTITY)")

    target = os.path.abspath(args.target)
    if os.path.lexists(target):
        if os.path.islink(target) or not os.path.isdir(target):
            raise TargetError(f"{target}: exists and is not a folder (a file or a symlink); pick another target")
        if os.listdir(target):
            raise TargetError(f"{target}: the folder is not empty; recover into an absent or empty folder")

    packs = Packs(repo, identity)
    staging = None
    try:
        packs.load_index()
        tree = read_tree(packs, sidecar)
        entries = plan(tree, sid)
        total = 0
        for e in entries:
            if e.kind != "file":
                continue
            # The copy located here is the one read later; read_blob checks its frame's size.
            raw = sum(packs.locate(c, f"state/{e.rel}").raw for c in e.chunks)
            if raw != e.size:
                raise Corrupt(f"state/{e.rel}: its chunks hold {raw} bytes, the index says {e.size}")
            total += e.size
        bound = sidecar.get("counts", {}).get("bytes")
        if isinstance(bound, int) and total > bound:
            raise Corrupt(f"snapshot {sid}: the files hold {total} bytes, more than the sidecar counts ({bound})")

        parent = os.path.dirname(target)
        os.makedirs(parent, mode=0o700, exist_ok=True)
        staging = os.path.join(
            parent,
            f".{os.path.basename(target)}.agentbak-recover-{os.getpid()}@{socket.gethostname()}-{secrets.token_hex(4)}",
        )
        os.mkdir(staging, 0o700)

        writer = Writer(packs, staging)
        counts = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0}
        for e in entries:
            path = os.path.join(staging, e.rel) if e.rel else staging
            if e.kind == "dir":
                os.makedirs(path, mode=0o700, exist_ok=True)
                counts["dirs"] += 1
            elif e.kind == "file":
                os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
                for c in e.chunks:
                    writer.add(e.rel, c)
                counts["files"] += 1
                counts["bytes"] += e.size
        writer.flush()

        files = [e for e in entries if e.kind == "file"]
        for e in files:
            actual = os.lstat(os.path.join(staging, e.rel)).st_size
            if actual != e.size:
                raise Corrupt(f"state/{e.rel}: rebuilt with {actual} bytes, the index says {e.size}")
        sums = b3sum_files([os.path.join(staging, e.rel) for e in files])
        if sums is not None:
            for e, s in zip(files, sums):
                if s != e.blake3:
                    raise Corrupt(f"state/{e.rel}: its blake3 is {s}, the index says {e.blake3}")

        # Links last, and only those that stay inside the target.
        links = {e.rel: e.link for e in entries if e.kind == "symlink"}
        skipped = []
        metas = [e for e in entries if e.kind != "symlink"]
        for e in entries:
            if e.kind != "symlink":
                continue
            why = link_escapes(e.rel, e.link, links)
            if why is not None:
                skipped.append((e, why))
                warn(f"skipped the link state/{e.rel} -> {e.link}: {why}; recreate it by hand once checked")
                continue
            os.symlink(e.link, os.path.join(staging, e.rel))
            counts["symlinks"] += 1
            metas.append(e)

        # Modes and mtimes, children before their folders (a stable sort, as agentbak's).
        metas.sort(key=lambda e: -(e.rel.count("/") + 1 if e.rel else 0))
        for e in metas:
            path = os.path.join(staging, e.rel) if e.rel else staging
            if e.kind != "symlink":
                os.chmod(path, e.mode & MODE_MASK, follow_symlinks=False)
            set_mtime(path, e.mtime)

        os.sync()
        os.rename(staging, target)
        staging = None
    finally:
        packs.close()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    warn(
        f"recovered snapshot {sid} into {target}: {counts['files']} files, {counts['bytes']} bytes, "
        f"{counts['dirs']} folders, {counts['symlinks']} symlinks"
        + (f", {len(skipped)} links skipped" if skipped else "")
        + f" ({writer.zstd_calls} zstd calls)"
    )
    return 3 if skipped else 0


def set_mtime(path: str, mtime: int) -> None:
    """Sets the modification time, keeping the access time (UTIME_OMIT is not in Python: the
    current atime is read back and set again)."""
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, mtime * 1_000_000_000), follow_symlinks=False)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="recover.py",
        description="Rebuild a snapshot of an agentbak format-2 repository (placeholders stay).",
    )
    parser.add_argument("repo", metavar="REPO", help="the repository folder")
    parser.add_argument("snapshot", metavar="SNAPSHOT_ID", help="an id, a unique prefix, or `latest`")
    parser.add_argument("target", metavar="TARGET", help="an absent or empty folder; receives the contents of state/")
    parser.add_argument("--identity", metavar="FILE", help="age identity file (or unencrypted OpenSSH key)")
    parser.add_argument("--agent", metavar="NAME", help="only this agent's snapshots (for `latest` and prefixes)")
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        return recover(args)
    except Usage as e:
        warn(str(e))
        return 2
    except TargetError as e:
        warn(str(e))
        return 1
    except Corrupt as e:
        warn(str(e))
        return 5
    except OSError as e:
        warn(f"{e.filename or ''}: {e.strerror}" if e.filename else str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
