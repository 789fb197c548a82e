#!/usr/bin/env python3
"""Scores a scanner's findings against the agent corpus's labels (scripts/gen-agent-corpus.py).

    score-agent-corpus.py LABELS.json agentbak|gitleaks REPORT.json [--misses]

A labelled secret is found when a finding (agentbak: severity `error`; gitleaks: any) lies on
one of its lines. A look-alike is a false positive when a finding lies on one of its lines; a
finding on a line no label covers is a false positive too ("stray"). Prints one line:
recall on live secrets, recall on base64-hidden ones, false positives over the look-alikes.
"""

import json
import sys


def findings(tool, report):
    data = json.load(open(report))
    out = []
    if tool == "agentbak":
        for f in data["findings"]:
            if f["severity"] != "error":
                continue
            path = f["path"].removeprefix("./")
            out.append((path, f["line"], f["rule"]))
    else:
        for f in data or []:
            path = f["File"]
            i = path.find("files/")
            path = path[i + len("files/"):] if i >= 0 else path
            for line in range(f["StartLine"], f["EndLine"] + 1):
                out.append((path, line, f["RuleID"]))
    return out


def main():
    labels = json.load(open(sys.argv[1]))["labels"]
    tool, report = sys.argv[2], sys.argv[3]
    found = findings(tool, report)
    at = {}
    for path, line, rule in found:
        at.setdefault((path, line), []).append(rule)
    covered = set()
    hit = {"live": [0, 0], "base64": [0, 0]}
    flagged, looks, misses, noisy = 0, 0, [], []
    for l in labels:
        lines = [(l["file"], n) for n in range(l["line"], l["end"] + 1)]
        covered.update(lines)
        rules = [r for key in lines for r in at.get(key, [])]
        if l["class"] == "lookalike":
            looks += 1
            if rules:
                flagged += 1
                noisy.append(f'{l["kind"]} {l["file"]}:{l["line"]} {sorted(set(rules))}')
        else:
            hit[l["class"]][1] += 1
            if rules:
                hit[l["class"]][0] += 1
            else:
                misses.append(f'{l["class"]} {l["kind"]} {l["file"]}:{l["line"]}')
    stray = sorted({(p, n) for p, n, _ in found if (p, n) not in covered})
    for p, n in stray:
        noisy.append(f"stray {p}:{n} {sorted(set(at[(p, n)]))}")
    fp = flagged + len(stray)
    pct = lambda a, b: 100.0 * a / b if b else 0.0
    print(f"{tool:9} recall live {hit['live'][0]}/{hit['live'][1]} ({pct(*hit['live']):.1f}%)  "
          f"base64 {hit['base64'][0]}/{hit['base64'][1]} ({pct(*hit['base64']):.1f}%)  "
          f"false positives {fp}/{looks} ({pct(fp, looks):.1f}%: {flagged} look-alikes, {len(stray)} stray)")
    if "--misses" in sys.argv:
        for m in misses:
            print("  missed", m)
        for n in noisy:
            print("  noisy ", n)


if __name__ == "__main__":
    main()
