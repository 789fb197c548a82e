#!/usr/bin/env python3
"""Agent-like state that changes hour by hour, for scripts/bench-incremental.sh.

    gen-incremental-state.py DIR [--size-mib N] [--seed S] init
    gen-incremental-state.py DIR [--size-mib N] [--seed S] round K

`init` creates DIR (absent or empty) holding about N MiB; `round K` applies hour K's changes
to it. Both are deterministic: the same N, S and sequence of rounds give the same bytes (give a
round the N and S its `init` had). Python 3 standard library only.

What the state holds (shares of N):
  transcripts/YYYY-MM/session-*.jsonl  35 %  chat transcripts, one JSON message a line; some
                                             content has quotes, newlines, tabs and non-ASCII
                                             text, so it is JSON-escaped (\\n, \\", \\u00e9)
  db/agent.db                          20 %  (4 to 128 MiB) a page database: 4 KiB pages of
                                             records and zeroed free space
  vectors/embeddings.f32               15 %  float32 rows of 768, plus vectors/ids.jsonl
  attachments/*.bin                    rest  uploads: half random bytes, half text
  tool-outputs/*.json, *.txt           small command and search results
  memory/*.md, config/*                small notes and settings
  config/credentials.json                    the one declared secret (stable over rounds)

An hour (`round K`): appends of a few hundred KB to 3 to 6 transcripts (a new session every
fourth hour), 50 to 200 random database pages rewritten in place (and a page or two appended),
100 to 400 vector rows appended, 2 to 4 memory notes edited, the settings rewritten, 1 to 3
new tool outputs and the oldest one deleted, and every eighth hour (K = 5, 13, 21, ...) a
large new attachment (N/50 MiB, at least 1).

The text is token-free on purpose: no provider-looking keys or credential assignments besides
the declared one, so agentbak's leak gate finds nothing to capture and the benchmark measures
backups, not captures.
"""

import argparse
import itertools
import json
import os
import random
import sys

PAGE = 4096
DIM = 768
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

COMMON = (
    "the a an of to in and or for with on at by from into over after before this that it "
    "is was be are were will would can could should may might must not no yes we you they "
    "file folder line function test build run check result output error warning step plan "
    "task user agent tool call read write search open close list update change fix add "
    "remove rename move copy commit branch merge review summary note memory context answer "
    "question request response message reply draft version release schedule meeting report "
    "table chart number value field record page index query cache log trace event session "
    "document section paragraph example reason because however then next first last again"
).split()


def vocabulary(rng, n=2500):
    """Common words plus made-up ones built from syllables: text that compresses like prose."""
    syll = ["ka", "lo", "mi", "ter", "on", "ra", "ve", "str", "ul", "pe", "dis", "an", "co",
            "ment", "tion", "ing", "ex", "pro", "re", "al", "ic", "ou", "be", "sa", "ne"]
    words = list(COMMON)
    while len(words) < n:
        words.append("".join(rng.choice(syll) for _ in range(rng.randint(1, 4))))
    return words


class Gen:
    def __init__(self, root, size_mib, seed, tag):
        self.root = root
        self.size = size_mib << 20
        self.seed = seed
        self.rng = random.Random("%s:%s" % (seed, tag))
        self.words = vocabulary(random.Random("%s:vocabulary" % seed))
        # Zipf-like frequencies, as in prose: the common words first.
        self.cum = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(self.words))))

    # --- text -------------------------------------------------------------------------------
    def sentence(self, lo=6, hi=22):
        w = self.rng.choices(self.words, cum_weights=self.cum, k=self.rng.randint(lo, hi))
        w[0] = w[0].capitalize()
        return " ".join(w) + self.rng.choice(".....?!:")

    def paragraph(self, lo=2, hi=6):
        return " ".join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    def rich_text(self):
        """Content that JSON has to escape: quotes, newlines, tabs, accents, emoji."""
        r = self.rng
        parts = [self.paragraph(1, 3)]
        if r.random() < 0.5:
            parts.append('He said "%s" and left.' % self.sentence(3, 8))
        if r.random() < 0.4:
            parts.append("```\n\tfor item in %s:\n\t\tprint(item)\n```" % r.choice(self.words))
        if r.random() < 0.3:
            parts.append(r.choice(["Café déjà vu à Zürich", "naïve façade, crème brûlée",
                                   "Straße über Köln", "日本語のメモ", "résumé ✅ done 🚀",
                                   "path C:\\Users\\agent\\notes.txt"]))
        return "\n".join(parts)

    def uid(self):
        return "%08x-%04x-%04x" % (self.rng.getrandbits(32), self.rng.getrandbits(16),
                                   self.rng.getrandbits(16))

    def transcript_lines(self, target, ts):
        """JSONL messages until `target` bytes: user and assistant turns, tool calls, results."""
        r = self.rng
        out, n = [], 0
        while n < target:
            kind = r.random()
            if kind < 0.3:
                msg = {"type": "message", "role": "user", "content": self.rich_text()}
            elif kind < 0.65:
                msg = {"type": "message", "role": "assistant", "content": self.paragraph(2, 8),
                       "model": "bench-model-2", "usage": {"input_tokens": r.randint(200, 9000),
                                                           "output_tokens": r.randint(20, 900)}}
            elif kind < 0.85:
                msg = {"type": "tool_call", "name": r.choice(["read_file", "search", "run",
                                                              "list_dir", "write_file"]),
                       "arguments": {"path": "src/%s/%s.py" % (r.choice(self.words),
                                                               r.choice(self.words)),
                                     "limit": r.randint(10, 400)}}
            else:
                msg = {"type": "tool_result", "exit": r.choice([0, 0, 0, 1]),
                       "output": "\n".join(self.sentence(3, 10) for _ in range(r.randint(2, 12)))}
            msg["id"] = self.uid()
            msg["ts"] = ts
            ts += r.randint(1, 40)
            line = json.dumps(msg) + "\n"
            out.append(line)
            n += len(line)
        return "".join(out).encode()

    # --- binary -----------------------------------------------------------------------------
    def text_pool(self, nbytes):
        parts, n = [], 0
        while n < nbytes:
            p = self.paragraph(4, 12) + "\n"
            parts.append(p)
            n += len(p)
        return "".join(parts).encode()[:nbytes]

    def db_page(self, pool, pageno):
        """A page: a 16-byte header, records (a row id, a length, text from the pool), zeroed
        free space at the end, as in SQLite's table leaves."""
        r = self.rng
        fill = r.randint(PAGE * 3 // 10, PAGE * 9 // 10)
        body = bytearray()
        cells = 0
        while len(body) < fill:
            ln = r.randint(30, 300)
            off = r.randrange(0, len(pool) - ln)
            body += r.getrandbits(64).to_bytes(8, "little") + ln.to_bytes(2, "little")
            body += pool[off:off + ln]
            cells += 1
        body = body[:PAGE - 16]
        head = (b"\x0d" + cells.to_bytes(2, "little") + pageno.to_bytes(4, "little")
                + r.getrandbits(64).to_bytes(8, "little") + b"\0")
        return bytes(head + body + bytes(PAGE - 16 - len(body)))

    def floats(self, rows):
        """float32 rows: random mantissas, exponents of values within about +-0.06 (as
        normalized embeddings), so they compress a little, as real ones do."""
        raw = bytearray(self.rng.randbytes(rows * DIM * 4))
        top = raw[3::4]
        raw[3::4] = top.translate(EXPONENT)
        return bytes(raw)

    def mixed(self, nbytes):
        half = nbytes // 2
        return self.rng.randbytes(half) + self.text_pool(nbytes - half)

    def tool_output(self, path_stem):
        r = self.rng
        if r.random() < 0.5:
            doc = {"command": "search", "query": " ".join(r.choices(self.words, k=3)),
                   "hits": [{"path": "docs/%s.md" % r.choice(self.words), "line": r.randint(1, 900),
                             "text": self.sentence()} for _ in range(r.randint(20, 400))]}
            return path_stem + ".json", json.dumps(doc, indent=1).encode()
        return path_stem + ".txt", self.text_pool(r.randint(4 << 10, 96 << 10))


# Byte 3 of a little-endian float32: sign bit kept, exponent set to 2^-9..2^-4.
EXPONENT = bytes((b & 0x80) | (0x3B + (b & 0x01) + ((b >> 1) & 0x01)) for b in range(256))


def write(path, data, mode="wb"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


def shares(size):
    db = min(128 << 20, max(4 << 20, size // 5)) // PAGE * PAGE
    return {"transcripts": size * 35 // 100, "db": db, "vectors": size * 15 // 100}


def init(root, size_mib, seed):
    if os.path.exists(root) and os.listdir(root):
        sys.exit("gen-incremental-state: %s is not empty" % root)
    g = Gen(root, size_mib, seed, "init")
    r = g.rng
    s = shares(g.size)
    total = 0

    cred = random.Random("%s:credential" % seed)
    key = "sk-proj-" + "".join(cred.choice(ALNUM) for _ in range(48))
    write(os.path.join(root, "config", "credentials.json"),
          (json.dumps({"openai": {"api_key": key}, "model": "bench-model-2"}, indent=2)
           + "\n").encode())
    settings(g, 0)
    write(os.path.join(root, "config", "agent.toml"),
          b'name = "bench"\nmax_steps = 40\ntemperature = 0.2\n[memory]\nkeep_days = 30\n')

    # Transcripts: sessions of 0.5 to 4 MiB over six months.
    ts, n = 1764300000, 0
    done = 0
    while done < s["transcripts"]:
        size = min(r.randint(512 << 10, 4 << 20), s["transcripts"] - done)
        data = g.transcript_lines(max(size, 1024), ts)
        write(os.path.join(root, "transcripts", "2026-%02d" % (6 + n % 6),
                           "session-%05d.jsonl" % n), data)
        done += len(data)
        ts += 3600
        n += 1
    total += done

    # The database, written page by page from a pool of text.
    pool = g.text_pool(8 << 20)
    path = os.path.join(root, "db", "agent.db")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for p in range(s["db"] // PAGE):
            f.write(g.db_page(pool, p))
    total += s["db"]

    rows = max(1, s["vectors"] // (DIM * 4))
    write(os.path.join(root, "vectors", "embeddings.f32"), g.floats(rows))
    write(os.path.join(root, "vectors", "ids.jsonl"),
          "".join(json.dumps({"row": i, "doc": g.uid()}) + "\n" for i in range(rows)).encode())
    total += rows * DIM * 4

    for i in range(30):
        write(os.path.join(root, "memory", "note-%02d.md" % i),
              ("# %s\n\n" % g.sentence(2, 5) + "\n".join("- " + g.sentence()
                                                          for _ in range(r.randint(20, 200)))
               + "\n").encode())
    for i in range(60):
        name, data = g.tool_output(os.path.join(root, "tool-outputs", "h0000-%02d" % i))
        write(name, data)
        total += len(data)

    i = 0
    while total < g.size:
        nbytes = min(r.randint(1 << 20, 8 << 20), max(g.size - total, 4096))
        write(os.path.join(root, "attachments", "upload-%04d.bin" % i), g.mixed(nbytes))
        total += nbytes
        i += 1


def settings(g, k):
    doc = {"agent": "bench", "last_round": k, "cursor": g.uid(),
           "features": {"memory": True, "tools": ["search", "read_file", "run"]},
           "limits": {"steps": 40 + k % 7, "context": 200000}}
    write(os.path.join(g.root, "config", "settings.json"), (json.dumps(doc, indent=2) + "\n")
          .encode())


def round_(root, size_mib, seed, k):
    if not os.path.isfile(os.path.join(root, "db", "agent.db")):
        sys.exit("gen-incremental-state: %s holds no state; run init first" % root)
    g = Gen(root, size_mib, seed, "round:%d" % k)
    r = g.rng
    ts = 1764300000 + 3600 * (1000 + k)

    # Transcripts: append to the newest sessions; a new one every fourth hour.
    tdir = os.path.join(root, "transcripts")
    sessions = sorted(os.path.join(d, f) for d, _, fs in os.walk(tdir) for f in fs)
    if k % 4 == 0:
        new = os.path.join(tdir, "2026-12", "session-h%04d.jsonl" % k)
        write(new, b"")
        sessions.append(new)
    recent = sessions[-8:]
    for path in r.sample(recent, min(len(recent), r.randint(3, 6))):
        write(path, g.transcript_lines(r.randint(40 << 10, 120 << 10), ts), "ab")

    # The database: pages rewritten in place, and sometimes a page or two appended.
    path = os.path.join(root, "db", "agent.db")
    pages = os.path.getsize(path) // PAGE
    pool = g.text_pool(1 << 20)
    with open(path, "r+b") as f:
        for p in sorted(r.sample(range(pages), min(pages, r.randint(50, 200)))):
            f.seek(p * PAGE)
            f.write(g.db_page(pool, p))
        f.seek(pages * PAGE)
        for p in range(r.randint(0, 2)):
            f.write(g.db_page(pool, pages + p))

    rows = r.randint(100, 400)
    first = os.path.getsize(os.path.join(root, "vectors", "embeddings.f32")) // (DIM * 4)
    write(os.path.join(root, "vectors", "embeddings.f32"), g.floats(rows), "ab")
    write(os.path.join(root, "vectors", "ids.jsonl"),
          "".join(json.dumps({"row": first + i, "doc": g.uid()}) + "\n"
                  for i in range(rows)).encode(), "ab")

    # Memory notes: a few lines replaced, one added.
    for i in r.sample(range(30), r.randint(2, 4)):
        path = os.path.join(root, "memory", "note-%02d.md" % i)
        with open(path, "rb") as f:
            lines = f.read().decode().split("\n")
        for _ in range(r.randint(1, 5)):
            lines[r.randrange(2, max(3, len(lines) - 1))] = "- " + g.sentence()
        lines.insert(len(lines) - 1, "- (hour %d) %s" % (k, g.sentence()))
        write(path, "\n".join(lines).encode())
    settings(g, k)

    # Tool outputs: 1 to 3 new, the oldest deleted.
    odir = os.path.join(root, "tool-outputs")
    for i in range(r.randint(1, 3)):
        name, data = g.tool_output(os.path.join(odir, "h%04d-%02d" % (k, i)))
        write(name, data)
    outputs = sorted(os.listdir(odir))
    if outputs:
        os.remove(os.path.join(odir, outputs[0]))

    if k % 8 == 5:
        write(os.path.join(root, "attachments", "upload-h%04d.bin" % k),
              g.mixed(max(1 << 20, g.size // 50)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--size-mib", type=int, default=500)
    ap.add_argument("--seed", default="1")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("init")
    rp = sub.add_parser("round")
    rp.add_argument("k", type=int)
    a = ap.parse_args()
    if a.size_mib < 8:
        ap.error("--size-mib must be at least 8")
    if a.cmd == "init":
        init(a.dir, a.size_mib, a.seed)
    else:
        if a.k < 1:
            ap.error("round K starts at 1")
        round_(a.dir, a.size_mib, a.seed, a.k)


if __name__ == "__main__":
    main()
