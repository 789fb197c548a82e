#!/usr/bin/env python3
"""Generates the benchmark corpus for scripts/bench-scan.sh: agent-like JSONL logs and JSON
state files with look-alikes everywhere and a known set of planted secrets.

    gen-scan-corpus.py OUT_DIR [SIZE_MIB]

Writes OUT_DIR/data/** (the files to scan), OUT_DIR/known/known.env (1,000 known values),
OUT_DIR/manifest.json (declares them), and OUT_DIR/planted.json (file, line, kind of every
planted secret). Deterministic for a given size. All secrets are random strings made here.
"""

import base64
import json
import os
import random
import string
import sys
import urllib.parse
import uuid

AN = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def rnd(n, alphabet=AN):
    return "".join(random.choice(alphabet) for _ in range(n))


# Provider tokens that a rule should find (the planted unknown secrets).
TOKENS = [
    ("github-pat", lambda: "ghp_" + rnd(36)),
    ("github-fine-grained-pat", lambda: "github_pat_" + rnd(22) + "_" + rnd(59)),
    ("openai-project-key", lambda: "sk-proj-" + rnd(74) + "T3BlbkFJ" + rnd(74)),
    ("anthropic-api-key", lambda: "sk-ant-api03-" + rnd(93, AN + "_-") + "AA"),
    ("slack-bot-token", lambda: f"xoxb-{rnd(12, string.digits)}-{rnd(13, string.digits)}-{rnd(24)}"),
    ("aws-access-key-id", lambda: "AKIA" + rnd(16, string.ascii_uppercase + "234567")),
    ("stripe-live-key", lambda: "sk_live_" + rnd(99)),
    ("gitlab-pat", lambda: "glpat-" + rnd(20)),
    ("google-api-key", lambda: "AIza" + rnd(35)),
    ("huggingface-token", lambda: "hf_" + rnd(34)),
    ("vault-service-token", lambda: "hvs." + rnd(24)),
    ("npm-token", lambda: "npm_" + rnd(36)),
    ("groq-api-key", lambda: "gsk_" + rnd(52)),
    ("sendgrid-api-key", lambda: "SG." + rnd(22) + "." + rnd(43)),
]

# Keyword prefixes for the rg floor: the bare literals a scanner must look for.
PREFIXES = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "sk-proj-", "sk-ant-",
            "xoxb-", "xoxp-", "AKIA", "ASIA", "sk_live_", "rk_live_", "AIza", "hf_", "hvs.", "hvb.",
            "npm_", "gsk_", "SG.", "pypi-", "AGE-SECRET-KEY-", "PRIVATE KEY", "eyJ", "dop_v1_",
            "shpat_", "dapi", "lin_api_", "AccountKey=", "postgres://", "bearer", "password",
            "secret", "token"]

WORDS = ("the agent read the file and called the tool then summarised the result for the user "
         "context window memory task plan step retry cache hit miss request response stream "
         "model latency budget queue worker session note draft review merge deploy").split()


def lookalike_line(i):
    """A log line full of things that look like secrets and are not."""
    kind = i % 9
    if kind == 0:
        return {"ts": f"2026-11-28T10:{i % 60:02d}:00Z", "level": "info", "request_id": str(uuid.uuid4()),
                "msg": " ".join(random.choices(WORDS, k=14))}
    if kind == 1:
        return {"event": "git", "commit": rnd(40, HEX), "tree": rnd(40, HEX), "msg": "checkout"}
    if kind == 2:
        return {"event": "fetch", "integrity": "sha512-" + base64.b64encode(os.urandom(64)).decode(),
                "url": f"https://registry.npmjs.org/pkg-{i % 97}/-/pkg-{i % 97}-1.0.{i % 13}.tgz"}
    if kind == 3:
        return {"usage": {"prompt_tokens": i % 5000, "completion_tokens": i % 700, "total_tokens": i % 5700},
                "model": "claude-sonnet", "cache_key": f"user-profile-page-{i % 50}"}
    if kind == 4:
        return {"tool": "read_file", "path": f"/home/agent/work/src/module_{i % 300}.py",
                "content": " ".join(random.choices(WORDS, k=40))}
    if kind == 5:
        return {"config": {"api_key": "${OPENAI_API_KEY}", "token": "<your-token>",
                           "password": "+agentbak:vault:agents/kevin/db:password+"}}
    if kind == 6:
        return {"image": "data:image/png;base64," + base64.b64encode(os.urandom(300)).decode()}
    if kind == 7:
        return {"sha256": rnd(64, HEX), "size": i, "uuid": str(uuid.uuid4()), "digest": "sha256:" + rnd(64, HEX)}
    return {"msg": "embedding", "vector": [round(random.random(), 4) for _ in range(24)]}


def encodings(value):
    """The value in one of the encodings the known-value matcher must see through."""
    raw = value.encode()
    pick = random.randrange(6)
    if pick == 0:
        return "raw", value
    if pick == 1:
        return "json", json.dumps(value)[1:-1]
    if pick == 2:
        return "base64", base64.b64encode(b"Basic:" + raw).decode()
    if pick == 3:
        return "base64-url", base64.urlsafe_b64encode(b"xx" + raw + b"yy").decode()
    if pick == 4:
        return "percent", urllib.parse.quote(value, safe="")
    return "hex", raw.hex()


def main():
    out = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 210
    random.seed(size)
    os.makedirs(f"{out}/data/logs", exist_ok=True)
    os.makedirs(f"{out}/data/state", exist_ok=True)
    os.makedirs(f"{out}/known", exist_ok=True)
    known = [rnd(12) + random.choice("!#%&*-_.~") + rnd(11) for _ in range(1000)]
    with open(f"{out}/known/known.env", "w") as f:
        for i, v in enumerate(known):
            f.write(f"K{i}={v}\n")
    manifest = {
        "version": 1, "agent": "bench", "state": "./known", "repository": "./backups",
        "stores": {"env": {"kind": "env"}},
        "secrets": [{"file": "known.env", "regex": "(?m)^K[0-9]+=(.+)$", "handle": "env:KNOWN"}],
    }
    with open(f"{out}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)

    pool = [json.dumps(lookalike_line(i)) for i in range(6000)]
    target = size * 1024 * 1024
    files = [f"logs/agent-{n:02d}.jsonl" for n in range(16)] + [f"state/session-{n:02d}.json" for n in range(4)]
    per_file = target // len(files)
    plants = []
    for name in files:
        plants += [(name, "rule", random.choice(TOKENS)) for _ in range(3)]
        plants += [(name, "known", random.randrange(len(known))) for _ in range(2)]
    planted = []
    for name in files:
        mine = [p for p in plants if p[0] == name]
        at = sorted(random.randrange(1, per_file // 250) for _ in mine)
        written, line_no = 0, 0
        with open(f"{out}/data/{name}", "w") as f:
            if name.endswith(".json"):
                f.write("[\n")
                line_no += 1
            while written < per_file:
                line_no += 1
                if mine and at and line_no >= at[0]:
                    _, kind, what = mine.pop(0)
                    at.pop(0)
                    if kind == "rule":
                        rule_id, make = what
                        text = json.dumps({"tool": "shell", "stdout": f"export API_CREDENTIAL={make()}"})
                        planted.append({"file": name, "line": line_no, "kind": "rule", "what": rule_id})
                    else:
                        enc, form = encodings(known[what])
                        text = json.dumps({"tool": "http", "note": f"sent {form} upstream"})
                        planted.append({"file": name, "line": line_no, "kind": "known", "what": enc})
                else:
                    text = random.choice(pool)
                line = text + (",\n" if name.endswith(".json") else "\n")
                f.write(line)
                written += len(line)
            if name.endswith(".json"):
                f.write("{}\n]\n")
    with open(f"{out}/planted.json", "w") as f:
        json.dump(planted, f, indent=1)
    with open(f"{out}/prefixes.txt", "w") as f:
        f.write("\n".join(PREFIXES) + "\n")


if __name__ == "__main__":
    main()
