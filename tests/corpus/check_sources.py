#!/usr/bin/env python3
"""Check that SOURCES.tsv and the corpus folders agree.

Verifies:
  * the header line is exactly `file, repository, commit, path, license` (tab separated);
  * every file under yaml/, json/, dotenv/ and ini/ has exactly one SOURCES line;
  * every SOURCES line names a file that exists (no stale lines, no duplicates);
  * commits are 40 lowercase hex digits, repositories look like owner/name;
  * local file names only use [A-Za-z0-9._-] and files are at most 400 KB.

Prints the number of files per folder and the number of distinct repositories.
Exits with status 1 if anything is wrong. Standard library only.
"""
import os
import re
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDERS = ("yaml", "json", "dotenv", "ini")
HEADER = ["file", "repository", "commit", "path", "license"]
MAX_SIZE = 400 * 1024


def main() -> int:
    errors = []
    with open(os.path.join(HERE, "SOURCES.tsv"), encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0].split("\t") != HEADER:
        errors.append("SOURCES.tsv: bad or missing header line")
        lines = lines[:1] + lines[1:]

    listed = Counter()
    repos = set()
    for n, line in enumerate(lines[1:], start=2):
        cols = line.split("\t")
        if len(cols) != 5:
            errors.append(f"SOURCES.tsv:{n}: expected 5 columns, got {len(cols)}")
            continue
        local, repo, commit, path, license_ = cols
        listed[local] += 1
        repos.add(repo)
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            errors.append(f"SOURCES.tsv:{n}: commit is not 40 hex digits: {commit!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+", repo):
            errors.append(f"SOURCES.tsv:{n}: bad repository {repo!r}")
        if not path or path.startswith("/"):
            errors.append(f"SOURCES.tsv:{n}: bad path {path!r}")
        if not license_:
            errors.append(f"SOURCES.tsv:{n}: empty license column (use 'unknown')")
        folder = local.split("/", 1)[0]
        if folder not in FOLDERS or local.count("/") != 1:
            errors.append(f"SOURCES.tsv:{n}: file {local!r} is not directly inside one of {FOLDERS}")

    for local, count in listed.items():
        if count > 1:
            errors.append(f"SOURCES.tsv: {local} is listed {count} times")

    present = set()
    counts = {}
    for folder in FOLDERS:
        d = os.path.join(HERE, folder)
        names = sorted(os.listdir(d)) if os.path.isdir(d) else []
        counts[folder] = len(names)
        for name in names:
            local = f"{folder}/{name}"
            present.add(local)
            full = os.path.join(d, name)
            if not os.path.isfile(full):
                errors.append(f"{local}: not a regular file")
                continue
            if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
                errors.append(f"{local}: name has characters outside [A-Za-z0-9._-]")
            if os.path.getsize(full) > MAX_SIZE:
                errors.append(f"{local}: larger than 400 KB")
            if local not in listed:
                errors.append(f"{local}: no line in SOURCES.tsv")

    for local in sorted(set(listed) - present):
        errors.append(f"SOURCES.tsv lists {local}, which does not exist")

    for folder in FOLDERS:
        print(f"{folder:7s} {counts[folder]:4d}")
    print(f"{'total':7s} {sum(counts.values()):4d}")
    print(f"distinct repositories: {len(repos)}")

    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    if errors:
        print(f"{len(errors)} problem(s) found", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
