#!/usr/bin/env python3
"""Checks of the generated Swift bindings that can run without a Swift compiler:

1. the C header (`edetail_ffiFFI.h`) compiles (`gcc -fsyntax-only`), and the modulemap names it;
2. every function the header declares is exported by the built library (`nm -D`), listed by
   gcc itself (`-aux-info`), not by a regex;
3. the generated `.swift` parses with tree-sitter-swift without ERROR or MISSING nodes.

A self-test first proves each check can fail: a doctored header with a broken declaration, a
doctored header declaring a function the library lacks, and doctored Swift with a syntax error.
Prints "N passed, M failed"; exits 1 when anything failed.

Usage: check_generated.py --swift-dir target/bindings/swift --lib target/debug/libedetail_ffi.so
(needs gcc, nm, and the tree_sitter + tree_sitter_swift Python packages)
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

HEADER = "edetail_ffiFFI.h"
MODULEMAP = "edetail_ffiFFI.modulemap"
SWIFT = "edetail_ffi.swift"
GCC_FLAGS = ["-fsyntax-only", "-w", "-D_Nonnull=", "-D_Nullable=", "-x", "c"]


def header_compiles(path):
    """(ok, message): whether gcc accepts the header."""
    r = subprocess.run(["gcc", *GCC_FLAGS, path], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()[:2000]


def declared_functions(path):
    """Names of the functions declared in the header itself (not in system headers), as gcc
    sees them: `-aux-info` writes one prototype per declared function with its source file."""
    with tempfile.TemporaryDirectory() as tmp:
        aux = os.path.join(tmp, "aux.txt")
        r = subprocess.run(["gcc", *GCC_FLAGS, f"-aux-info={aux}", path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"gcc failed on {path}: {r.stderr.strip()[:500]}")
        with open(aux) as f:
            lines = f.read().splitlines()
    base = os.path.basename(path)
    names = set()
    for line in lines:
        # /* edetail_ffiFFI.h:123:NC */ extern uint64_t uniffi_..._fn_clone_assetresponse (uint64_t, RustCallStatus *);
        m = re.match(r"/\* (.+?):\d+:\w+ \*/ (.*)$", line)
        if not m or os.path.basename(m.group(1)) != base:
            continue
        decl = re.match(r".*?\b([A-Za-z_]\w*)\s*\(", m.group(2))
        if decl:
            names.add(decl.group(1))
    return names


def exported_functions(lib):
    r = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True)
    return {parts[2] for parts in (l.split() for l in r.stdout.splitlines()) if len(parts) == 3 and parts[1] == "T"}


def missing_symbols(header, exported):
    return sorted(declared_functions(header) - exported)


# The Swift version the generated code is checked as (the Package.swift tools version).
SWIFT_VERSION = (6, 0)
VERSION_CONDITION = re.compile(rb"^\s*#if\s+(?:swift|compiler)\(>=\s*([0-9.]+)\)\s*$")


def normalize_for_tree_sitter(source):
    """Rewrites two valid Swift forms that uniffi emits and tree-sitter-swift 0.7 cannot parse,
    keeping the meaning a Swift 6 compiler gives them; returns (source, rewrites):
    - `#if swift(>=5.8)` / `#if compiler(>=6)` blocks are resolved as that compiler does (the
      grammar rejects a lone attribute such as `@_documentation(visibility: private)` inside
      `#if`); other conditions (`#if canImport(...)`) are left for the parser;
    - a closure returning the empty tuple, `{ () }`, becomes `{ Void() }` (the same value)."""
    out, stack, rewrites = [], [], 0  # stack: None for a kept #if, else [taking]
    for line in source.split(b"\n"):
        stripped = line.strip()
        m = VERSION_CONDITION.match(line)
        if m:
            want = tuple(int(x) for x in m.group(1).split(b"."))
            stack.append([want <= SWIFT_VERSION])
            rewrites += 1
            continue
        if stripped.startswith(b"#if"):
            stack.append(None)
        elif stripped.startswith((b"#else", b"#elseif", b"#endif")) and stack and stack[-1] is not None:
            if stripped.startswith(b"#endif"):
                stack.pop()
            elif stripped.startswith(b"#else") and not stripped.startswith(b"#elseif"):
                stack[-1][0] = not stack[-1][0]
            else:
                raise ValueError("#elseif after a version condition: extend normalize_for_tree_sitter")
            continue
        elif stripped.startswith(b"#endif") and stack:
            stack.pop()
        if all(f is None or f[0] for f in stack):
            out.append(line)
    text = b"\n".join(out)
    text, n = re.subn(rb"\{ \(\) \}", b"{ Void() }", text)
    return text, rewrites + n


def swift_syntax_errors(source_bytes):
    """(line, kind, snippet) of every ERROR or MISSING node tree-sitter-swift finds (after
    `normalize_for_tree_sitter`; line numbers are in the normalized text)."""
    import tree_sitter
    import tree_sitter_swift

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    source_bytes, _ = normalize_for_tree_sitter(source_bytes)
    tree = parser.parse(source_bytes)
    errors = []
    stack = [tree.root_node]
    while stack:
        n = stack.pop()
        if n.is_error or n.is_missing:
            snippet = source_bytes[n.start_byte : min(n.end_byte, n.start_byte + 60)].decode("utf-8", "replace")
            errors.append((n.start_point[0] + 1, "MISSING" if n.is_missing else "ERROR", snippet))
        if n.has_error:
            stack.extend(n.children)
    return sorted(errors)


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {name}")
        else:
            self.failed += 1
            print(f"  FAIL  {name}" + (f"\n        {detail}" if detail else ""))


def self_test(r, header, exported, swift_source):
    """Each check must be able to fail: run them on doctored inputs."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(header) as f:
            text = f.read()
        broken = os.path.join(tmp, "broken", HEADER)
        os.makedirs(os.path.dirname(broken))
        with open(broken, "w") as f:
            f.write(text + "\nuint64_t uniffi_edetail_ffi_fn_broken(uint64_t handle RustCallStatus *out_status);\n")
        ok, _ = header_compiles(broken)
        r.check("self-test: a header with a broken declaration does not compile", not ok)

        extra = os.path.join(tmp, "extra", HEADER)
        os.makedirs(os.path.dirname(extra))
        with open(extra, "w") as f:
            f.write(text + "\nvoid uniffi_edetail_ffi_fn_method_edetaildevice_not_in_the_library(uint64_t ptr);\n")
        missing = missing_symbols(extra, exported)
        r.check(
            "self-test: a declared function absent from the library is reported",
            missing == ["uniffi_edetail_ffi_fn_method_edetaildevice_not_in_the_library"],
            f"reported {missing}",
        )
        some = sorted(declared_functions(header))[len(declared_functions(header)) // 2]
        missing = missing_symbols(header, exported - {some})
        r.check("self-test: a symbol removed from the library's list is reported", missing == [some], f"reported {missing}")

    doctored = swift_source.replace(b"public func ", b"public func (", 1)
    r.check("self-test: Swift with a syntax error has ERROR nodes", doctored != swift_source and swift_syntax_errors(doctored) != [])
    inside = swift_source.replace(b"@_documentation(visibility: private)", b"@_documentation(visibility: private", 1)
    r.check(
        "self-test: an error inside a resolved #if swift(...) block is still reported",
        inside != swift_source and swift_syntax_errors(inside) != [],
    )
    unclosed = swift_source.rstrip()
    unclosed = unclosed[: unclosed.rfind(b"}")]
    r.check("self-test: Swift with a missing closing brace is reported", swift_syntax_errors(unclosed) != [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swift-dir", required=True)
    ap.add_argument("--lib", required=True)
    args = ap.parse_args()
    header = os.path.join(args.swift_dir, HEADER)
    swift_path = os.path.join(args.swift_dir, SWIFT)
    r = Results()

    try:
        with open(swift_path, "rb") as f:
            swift_source = f.read()
        exported = exported_functions(args.lib)
        self_test(r, header, exported, swift_source)

        ok, err = header_compiles(header)
        r.check(f"{HEADER} compiles (gcc -fsyntax-only)", ok, err)

        with open(os.path.join(args.swift_dir, MODULEMAP)) as f:
            modulemap = f.read()
        r.check(f"{MODULEMAP} names {HEADER}", f'header "{HEADER}"' in modulemap, modulemap.strip())

        declared = declared_functions(header)
        # The header declares the scaffolding (rustbuffer, futures), every exported method, the
        # checksums and the contract version: far more than a handful.
        r.check(
            f"{HEADER} declares the library's functions ({len(declared)})",
            len(declared) > 100 and "ffi_edetail_ffi_uniffi_contract_version" in declared
            and any(n.endswith("_fn_method_edetaildevice_sync_now") for n in declared),
            f"declared: {sorted(declared)[:10]}...",
        )
        missing = missing_symbols(header, exported)
        r.check(f"every declared function is exported by {os.path.basename(args.lib)}", not missing, f"missing: {missing}")

        errors = swift_syntax_errors(swift_source)
        lines = swift_source.count(b"\n")
        _, rewrites = normalize_for_tree_sitter(swift_source)
        r.check(
            f"{SWIFT} parses with tree-sitter-swift ({lines} lines, {rewrites} grammar-gap rewrites) without ERROR/MISSING nodes",
            not errors,
            "\n        ".join(f"line {ln}: {kind} {snip!r}" for ln, kind, snip in errors[:10]),
        )
    except Exception as e:  # a crash in the checker is a failure, not a pass
        r.check("checker ran to completion", False, f"{type(e).__name__}: {e}")

    print(f"{r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
