#!/usr/bin/env python3
"""Offline dependency policy check: `cargo deny check bans licenses sources`
without the network, without cargo-deny and without compiling anything.

It reads `cargo metadata --format-version 1 --locked --offline` (run from the
repository root, the directory above scripts/) and checks every package in the
resolved graph (all targets, dev and build dependencies included, as cargo-deny
does by default):

  sources   every package comes from crates.io or is a local (path) crate;
            git dependencies and other registries fail.
  licenses  every package's SPDX `license` expression is satisfiable by
            ALLOWED_LICENSES (OR: any side allowed; AND: all sides; WITH: the
            exact "X WITH E" pair must be allowed; legacy "A/B" means A OR B).
            A package with only a `license_file` fails unless it has an entry
            in LICENSE_FILE_EXCEPTIONS.
  bans      no crate in BANNED is present; crates present in several versions
            are reported as warnings (cargo-deny's multiple-versions = "warn").

It prints one line per problem, then a summary line, and exits 1 on any failure
(including cargo metadata itself failing), 0 otherwise. Python 3.11 standard
library only.

    scripts/check-deps.py                    # the check, as CI runs it
    scripts/check-deps.py --metadata m.json  # check a saved cargo metadata output
    scripts/check-deps.py --self-test        # test the SPDX expression parser

`cargo metadata --offline` needs the crates' manifests in the local Cargo
registry cache: run it after a build, `cargo fetch` or `cargo clippy` has
downloaded them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

# --- policy -----------------------------------------------------------------

# Where packages may come from. crates.io is written this way in Cargo's
# metadata whichever protocol fetched it; the sparse form is the same registry.
ALLOWED_SOURCES = {
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
}

# Licenses any dependency may be used under (SPDX identifiers; matched
# case-insensitively). An exception (`WITH`) is allowed only as the exact pair.
ALLOWED_LICENSES = [
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "CC0-1.0",
    "MPL-2.0",
    "0BSD",
    "BSL-1.0",
    "CDLA-Permissive-2.0",
    "OpenSSL",
]

# Packages that declare no SPDX `license`, only a `license_file`, and what that
# file amounts to (checked against ALLOWED_LICENSES like any expression).
# Keys are "name@version": a new version must be read again before it is added,
# since nothing here checks the file's text. Add only well-known permissive
# cases, with the reason, e.g.:
#
#   "ring@0.16.20": (
#       "MIT AND ISC AND OpenSSL",
#       "ring's LICENSE: ISC-style for ring's own code, OpenSSL/SSLeay and MIT "
#       "for the BoringSSL-derived parts; all permissive",
#   ),
#
# None are needed on the current Cargo.lock: every package declares `license`.
LICENSE_FILE_EXCEPTIONS: dict[str, tuple[str, str]] = {}

# Crates Klaxon never wants, and why.
BANNED = {
    "openssl": "Klaxon uses rustls; no OpenSSL bindings",
    "openssl-sys": "Klaxon uses rustls; no linking against the system OpenSSL",
    "openssl-src": "Klaxon uses rustls; no vendored OpenSSL build",
    "native-tls": "Klaxon uses rustls, not the platform TLS stack",
    "tokio-native-tls": "Klaxon uses rustls, not the platform TLS stack",
    "hyper-tls": "Klaxon uses rustls (hyper-rustls), not native-tls",
}

# --- SPDX expressions -------------------------------------------------------


class SpdxError(ValueError):
    pass


_TOKEN = re.compile(r"\s*(?:(\()|(\))|(/)|([A-Za-z0-9.+:-]+))")


def _tokens(expr: str) -> list[str]:
    out: list[str] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise SpdxError(f"unexpected {expr[pos:].strip()[:20]!r}")
        out.append(m.group(m.lastindex or 0))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    if not out:
        raise SpdxError("empty expression")
    return out


# A parsed expression: ("or", [..]) | ("and", [..]) | ("lic", id, exception or None)
Node = tuple


def parse_spdx(expr: str) -> Node:
    """Parses an SPDX license expression (lax, as Cargo manifests write them:
    operators in any case, `/` as OR). Precedence: WITH, then AND, then OR."""
    toks = _tokens(expr)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def is_op(tok: str | None, op: str) -> bool:
        return tok is not None and tok.upper() == op

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise SpdxError("expression ends too early")
        pos += 1
        return toks[pos - 1]

    def license_id(tok: str) -> str:
        if tok in ("(", ")", "/") or tok.upper() in ("OR", "AND", "WITH"):
            raise SpdxError(f"expected a license, found {tok!r}")
        return tok

    def primary() -> Node:
        tok = take()
        if tok == "(":
            node = or_expr()
            if take() != ")":
                raise SpdxError("missing `)`")
            return node
        lic = license_id(tok)
        if is_op(peek(), "WITH"):
            take()
            return ("lic", lic, license_id(take()))
        return ("lic", lic, None)

    def and_expr() -> Node:
        parts = [primary()]
        while is_op(peek(), "AND"):
            take()
            parts.append(primary())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def or_expr() -> Node:
        parts = [and_expr()]
        while is_op(peek(), "OR") or peek() == "/":
            take()
            parts.append(and_expr())
        return parts[0] if len(parts) == 1 else ("or", parts)

    node = or_expr()
    if pos != len(toks):
        raise SpdxError(f"unexpected {toks[pos]!r}")
    return node


def _key(lic: str, exception: str | None) -> str:
    # "X+" (this version or later) may be used under X itself.
    base = lic[:-1] if lic.endswith("+") else lic
    return base.lower() if exception is None else f"{base.lower()} with {exception.lower()}"


def _allowed_keys(allowed: list[str]) -> set[str]:
    keys = set()
    for entry in allowed:
        node = parse_spdx(entry)
        if node[0] != "lic":
            raise SpdxError(f"allow-list entry {entry!r} is not a single license")
        keys.add(_key(node[1], node[2]))
    return keys


def satisfied(node: Node, allowed: set[str]) -> bool:
    kind = node[0]
    if kind == "lic":
        return _key(node[1], node[2]) in allowed
    if kind == "or":
        return any(satisfied(n, allowed) for n in node[1])
    return all(satisfied(n, allowed) for n in node[1])


def leaves(node: Node) -> list[str]:
    if node[0] == "lic":
        return [node[1] if node[2] is None else f"{node[1]} WITH {node[2]}"]
    return [leaf for n in node[1] for leaf in leaves(n)]


# --- the checks -------------------------------------------------------------


def load_metadata(args: argparse.Namespace, root: Path) -> dict:
    if args.metadata:
        text = sys.stdin.read() if args.metadata == "-" else Path(args.metadata).read_text()
        return json.loads(text)
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "metadata", "--format-version", "1", "--locked", "--offline"]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    except OSError as e:
        raise SystemExit(f"deps: cannot run {cargo}: {e}") from e
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(
            f"deps: `{' '.join(cmd)}` failed (exit {done.returncode}); "
            "is Cargo.lock up to date and are the crates fetched?"
        )
    return json.loads(done.stdout)


def label(pkg: dict) -> str:
    return f"{pkg['name']} {pkg['version']}"


def dependents(meta: dict, by_id: dict[str, dict]) -> dict[str, list[str]]:
    """Package id -> "name version" of the packages that depend on it directly."""
    users: dict[str, set[str]] = defaultdict(set)
    for node in (meta.get("resolve") or {}).get("nodes", []):
        parent = by_id.get(node["id"])
        for dep in node.get("deps", []):
            if parent is not None:
                users[dep["pkg"]].add(label(parent))
    return {k: sorted(v) for k, v in users.items()}


def short_list(names: list[str], limit: int = 4) -> str:
    if not names:
        return "no other package"
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def check(meta: dict) -> int:
    packages = sorted(meta["packages"], key=lambda p: (p["name"], p["version"]))
    by_id = {p["id"]: p for p in packages}
    users = dependents(meta, by_id)
    allowed = _allowed_keys(ALLOWED_LICENSES)

    source_problems = license_problems = banned = 0
    used_exceptions: set[str] = set()

    for pkg in packages:
        source = pkg.get("source")
        if source is not None and source not in ALLOWED_SOURCES:
            source_problems += 1
            print(f"source: {label(pkg)} comes from {source}, not crates.io")

    for pkg in packages:
        expr = pkg.get("license")
        origin = "license"
        if not expr:
            exc_key = f"{pkg['name']}@{pkg['version']}"
            if exc_key in LICENSE_FILE_EXCEPTIONS:
                used_exceptions.add(exc_key)
                expr, _why = LICENSE_FILE_EXCEPTIONS[exc_key]
                origin = "license_file (exception)"
            else:
                license_problems += 1
                what = (
                    f"declares only license_file {pkg['license_file']!r}"
                    if pkg.get("license_file")
                    else "declares no license at all"
                )
                print(
                    f"license: {label(pkg)} {what}; read it and add an entry to "
                    "LICENSE_FILE_EXCEPTIONS if it is permissive"
                )
                continue
        try:
            node = parse_spdx(expr)
        except SpdxError as e:
            license_problems += 1
            print(f"license: {label(pkg)}: {origin} {expr!r} is not an SPDX expression: {e}")
            continue
        if not satisfied(node, allowed):
            license_problems += 1
            missing = sorted({leaf for leaf in leaves(node) if _key(*_split(leaf)) not in allowed})
            print(
                f"license: {label(pkg)}: {origin} {expr!r} is not satisfied by the "
                f"allow-list (not allowed: {', '.join(missing)})"
            )

    for key in sorted(set(LICENSE_FILE_EXCEPTIONS) - used_exceptions):
        print(f"warning: license exception {key} matches no package without a license; remove it")

    versions: dict[str, list[dict]] = defaultdict(list)
    for pkg in packages:
        versions[pkg["name"]].append(pkg)
        if pkg["name"] in BANNED:
            banned += 1
            print(
                f"banned: {label(pkg)} ({BANNED[pkg['name']]}); "
                f"required by {short_list(users.get(pkg['id'], []))}"
            )

    duplicated = 0
    for name, pkgs in sorted(versions.items()):
        if len(pkgs) < 2:
            continue
        duplicated += 1
        each = "; ".join(
            f"{p['version']} (used by {short_list(users.get(p['id'], []), 3)})" for p in pkgs
        )
        print(f"warning: {name} is present in {len(pkgs)} versions: {each}")

    print(
        f"deps: {len(packages)} packages, {source_problems} source problems, "
        f"{license_problems} license problems, {banned} banned, "
        f"{duplicated} duplicated (warnings)"
    )
    return 1 if source_problems or license_problems or banned else 0


def _split(leaf: str) -> tuple[str, str | None]:
    lic, _, exc = leaf.partition(" WITH ")
    return lic, exc or None


# --- self-test --------------------------------------------------------------


def self_test() -> int:
    allowed = _allowed_keys(ALLOWED_LICENSES)
    cases = [
        ("MIT", True),
        ("mit", True),
        ("MIT OR Apache-2.0", True),
        ("MIT/Apache-2.0", True),
        ("Apache-2.0 / MIT", True),
        ("Unlicense/MIT", True),
        ("Unlicense OR MIT", True),
        ("Unlicense", False),
        ("GPL-3.0-only", False),
        ("GPL-3.0-only OR MIT", True),
        ("MIT AND GPL-3.0-only", False),
        ("(MIT OR Apache-2.0) AND Unicode-3.0", True),
        ("(MIT OR GPL-3.0-only) AND (LGPL-2.1-only OR ISC)", True),
        ("(MIT OR GPL-3.0-only) AND LGPL-2.1-only", False),
        ("MIT AND (GPL-3.0-only OR Apache-2.0)", True),
        # AND binds tighter than OR: GPL OR (MIT AND ISC).
        ("GPL-3.0-only OR MIT AND ISC", True),
        ("MIT AND GPL-3.0-only OR ISC", True),
        ("MIT AND GPL-3.0-only OR LGPL-2.1-only", False),
        ("Apache-2.0 WITH LLVM-exception", True),
        ("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT", True),
        ("GPL-2.0-only WITH Classpath-exception-2.0", False),
        ("MIT WITH Classpath-exception-2.0", False),
        ("Apache-2.0 AND ISC", True),
        ("MIT OR Apache-2.0 OR LGPL-2.1-or-later", True),
        ("Apache-2.0+", True),
        ("LicenseRef-ring", False),
        ("mit or apache-2.0", True),
    ]
    broken = ["", "MIT OR", "(MIT", "MIT)", "MIT AND AND ISC", "WITH MIT", "MIT, Apache-2.0"]
    failed = 0
    for expr, want in cases:
        got = satisfied(parse_spdx(expr), allowed)
        if got != want:
            failed += 1
            print(f"FAIL {expr!r}: satisfied={got}, want {want}")
    for expr in broken:
        try:
            parse_spdx(expr)
        except SpdxError:
            continue
        failed += 1
        print(f"FAIL {expr!r} parsed, but it is not an SPDX expression")
    total = len(cases) + len(broken)
    print(f"check-deps self-test: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metadata", help="read cargo metadata JSON from this file ('-': stdin)")
    parser.add_argument("--self-test", action="store_true", help="test the SPDX parser and exit")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    root = Path(__file__).resolve().parent.parent
    return check(load_metadata(args, root))


if __name__ == "__main__":
    sys.exit(main())
