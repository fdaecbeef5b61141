#!/usr/bin/env python3
"""Delete build outputs that the current build no longer uses, so a build cache that is kept between
CI runs on one machine stays the size of one build instead of growing with every dependency or
feature change (it filled a CI machine's disk once: `No space left on device` while linking).

Usage: prune-target.py TARGET_DIR ARTIFACTS.json [ARTIFACTS.json ...]

Each ARTIFACTS.json is the `--message-format=json` output of one cargo command whose outputs are to
be kept (run after the build, so every unit is reported, fresh or not). Cargo names every unit's
outputs with a 16-hex-digit hash (`deps/libburn_nn-<hash>.rlib`, `build/<pkg>-<hash>/`,
`.fingerprint/<pkg>-<hash>/`); everything under `<profile>/{deps,build,.fingerprint,examples}` whose
hash no kept unit reported is removed. A file it gets wrong is rebuilt by the next run, never used
stale: cargo rebuilds any unit whose fingerprint is missing.
"""

import json
import os
import re
import shutil
import sys

HASH = re.compile(r"-([0-9a-f]{16})(?:\.|$)")


def kept_hashes(paths):
    """Hashes of every unit the listings report, and the paths reported without one (binaries and
    examples are reported by their uplifted copy, `debug/colorize`, a hard link to
    `debug/deps/colorize-<hash>`)."""
    hashes = set()
    unhashed = []
    for path in paths:
        try:
            f = open(path, encoding="utf-8")
        except OSError as e:
            # A listing that cannot be read keeps everything (see main), never fails the run.
            print(f"prune-target: cannot read {path}: {e.strerror}")
            return set(), []
        with f:
            for line in f:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                names = []
                if msg.get("reason") == "compiler-artifact":
                    names = list(msg.get("filenames") or [])
                    if msg.get("executable"):
                        names.append(msg["executable"])
                elif msg.get("reason") == "build-script-executed":
                    names = [msg.get("out_dir") or ""]
                for name in names:
                    found = [m.group(1) for m in map(HASH.search, name.split(os.sep)) if m]
                    hashes.update(found)
                    if not found and name:
                        unhashed.append(name)
    return hashes, unhashed


def linked_hashes(target, unhashed):
    """The hashes of the hashed files that the unhashed paths are hard links of."""
    inodes = set()
    for name in unhashed:
        try:
            inodes.add(os.stat(name).st_ino)
        except OSError:
            pass
    hashes = set()
    for profile in ("debug", "release"):
        for sub in ("deps", "examples"):
            folder = os.path.join(target, profile, sub)
            if not os.path.isdir(folder):
                continue
            for entry in os.scandir(folder):
                m = HASH.search(entry.name)
                if m and entry.is_file() and entry.stat().st_ino in inodes:
                    hashes.add(m.group(1))
    return hashes


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: prune-target.py TARGET_DIR ARTIFACTS.json [ARTIFACTS.json ...]")
    target, lists = sys.argv[1], sys.argv[2:]
    keep, unhashed = kept_hashes(lists)
    keep |= linked_hashes(target, unhashed)
    if len(keep) < 50:
        # A failed or empty listing must not wipe the cache.
        print(f"prune-target: only {len(keep)} units listed, nothing removed")
        return
    removed = 0
    freed = 0
    for profile in ("debug", "release"):
        for sub in ("deps", "build", ".fingerprint", "examples"):
            folder = os.path.join(target, profile, sub)
            if not os.path.isdir(folder):
                continue
            for entry in os.scandir(folder):
                m = HASH.search(entry.name)
                if not m or m.group(1) in keep:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    for root, _, files in os.walk(entry.path):
                        for f in files:
                            try:
                                freed += os.lstat(os.path.join(root, f)).st_size
                            except OSError:
                                pass
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    freed += entry.stat(follow_symlinks=False).st_size
                    os.remove(entry.path)
                removed += 1
    print(f"prune-target: kept {len(keep)} units, removed {removed} stale entries ({freed / 1e9:.1f} GB)")


if __name__ == "__main__":
    main()
