#!/usr/bin/env python3
"""Checks the Android and iOS shell examples on a machine without an Android SDK or a Swift
compiler. Run it through `scripts/check-shells`, which installs the parsers and generates the
bindings. What it checks, per shell (examples/android-shell, examples/ios-shell):

  size    code lines must stay under 350 (200 before the shells presented remotely; the line
          printed says how many are RemotePresenting's). A code line is a line holding at least
          one token that is not a comment (tree-sitter leaves); blank lines, comment-only lines and
          package/import declarations are not counted (the count with them is printed too);
          the shell's README.md must state the same number ("**N lines of Kotlin code**").
  syntax  every .kt / .swift file parses with tree-sitter-kotlin / tree-sitter-swift without
          ERROR or MISSING nodes.
  api     every use of the library exists in the generated bindings (edetail_ffi.kt /
          edetail_ffi.swift): methods called on values of library types (with the same number
          of arguments in Kotlin, the same argument labels in Swift), `Type.member` references
          (enum cases, error variants, static constructors), record constructors and the record
          fields read, Swift `.case` arguments of library enum parameters, and the methods of
          classes implementing the library's callback interfaces (TokenProvider, SyncListener),
          Swift `.case` patterns of `switch` / `if case` on library enums (RemoteEvent).
          Values are typed by their declarations (`name: Type`) or by `val/let x = <chain>`
          whose type follows from the bindings; a name typed anywhere in a shell is typed
          throughout it, except in a file that declares it only with a type of its own
          (`session: RepSession` there, `session: RemoteSession` elsewhere). Uses the check
          cannot type (lambda parameters, platform calls) are not checked.
  bridge  the JavaScript names the shells use are those crates/edetail-core/js/edetail.js
          looks for (the iOS message handler, the Android interface and its method, and
          window.edetail._receive for replies).
  containers  the vendor container duties (ADR 0013; crates/edetail-core/js/README.md,
          "containers.js"): the runtime scripts the core serves (names read from
          crates/edetail-core/src/assets.rs), edetail.js before containers.js, read through
          resolveAsset("/_edetail/..."), veeva-clm.js tied to the Veeva bridge (BridgeKind); iOS: a
          WKUserScript at .atDocumentStart with forMainFrameOnly: false; Android: a feature-detected
          WebViewCompat.addDocumentStartJavaScript and the <script src> fallback after <head> (and
          androidx.webkit in app/build.gradle.kts); `veeva` / `objc` navigations (and, on iOS, the
          native `veeva` / `nativeCall` message handlers containers.js defers to) mapped to the
          window.edetailContainers functions containers.js exports, intercepted (Android
          shouldOverrideUrlLoading, iOS decidePolicyFor + .cancel) and handed over as a JSON literal
          (JSONObject.quote / a JSONSerialization helper), never spliced raw; Android adds no second
          JavaScript interface; navigation results: `navigate` read from vendor results and `moved`
          honoured, and the FFI's SlideTarget.moved read wherever EdetailDevice.navigate is called;
          Android's wide viewport; each README's "Decks made for other vendors" section.
  remote  remote detailing (ADR 0023), the "Present remotely" flow: the RemoteSession calls it
          needs (openRemoteSession, joinUrl, nextEvent, admit, setControl, end), the events it
          handles (AttendeeJoined, Navigated, Disconnected, Ended, Replaced), the blocking calls
          (openRemoteSession, nextEvent, end, relink) inside a background block (Kotlin
          Dispatchers.IO / thread / onDevice; Swift a non-main queue, Thread, Task.detached),
          the `while` around nextEvent leaving at Ended and Replaced, the join link through the
          share sheet (ACTION_SEND chooser; UIActivityViewController and a CIQRCodeGenerator QR
          code), each README's "Remote presenting" section.
  config  AndroidManifest.xml names classes that exist and the permissions the code needs;
          the Info.plist fragment permits exactly the BGTask identifiers the Swift code uses
          and the background modes for the request types it submits.
  self    the checks can fail: doctored copies of the shells (a renamed library call, a wrong
          argument label, an unknown enum case, a syntax error, a wrong bridge name, a shell
          grown past the size limit, a remote call on the main thread, ...) must each be caught.

Prints one line per check and a last line `N passed, M failed`; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import plistlib
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter_kotlin
import tree_sitter_swift
from tree_sitter import Language, Parser

MAX_CODE_LINES = 350  # a shell must stay strictly under this (200 before remote presenting)
REMOTE_FILE = "RemotePresenting"  # the remote-presenting part of each shell, counted apart in the size line

# ------------------------------------------------------------------------------ languages


@dataclass(frozen=True)
class Lang:
    name: str
    ext: str
    parser: Parser
    comments: frozenset[str]  # node types of comments
    string_text: frozenset[str]  # node types of literal string text (interpolations are kept)
    # Members every value has on the platform (not the library's): never reported.
    platform_members: frozenset[str]


KOTLIN = Lang(
    "kotlin",
    ".kt",
    Parser(Language(tree_sitter_kotlin.language())),
    frozenset({"line_comment", "block_comment", "comment", "multiline_comment"}),
    frozenset({"string_content"}),
    frozenset({"message", "cause", "javaClass", "toString", "hashCode", "equals", "copy", "let", "also", "apply", "run",
               "takeIf", "localizedMessage", "stackTrace"}),
)
SWIFT = Lang(
    "swift",
    ".swift",
    Parser(Language(tree_sitter_swift.language())),
    frozenset({"comment", "multiline_comment"}),
    frozenset({"line_str_text", "multi_line_str_text", "str_escaped_char"}),
    frozenset({"localizedDescription", "errorDescription", "hashValue", "self"}),
)

# ------------------------------------------------------------------------------ the bindings' API


@dataclass
class Member:
    kind: str  # method | static | field | case | variant
    params: list[str]  # Kotlin: parameter names; Swift: argument labels
    required: int  # parameters without a default value
    ret: str | None  # the type a call / field / case yields
    param_types: list[str] = field(default_factory=list)


@dataclass
class LibType:
    name: str
    kind: str  # object | callback | record | enum | error | variant
    members: dict[str, Member] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)  # error/sealed: the variant type names


def strip_doc_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"(?m)//.*$", "", text)


def matching(text: str, i: int, open_: str = "{", close: str = "}") -> int:
    """Index just past the bracket closing the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def block_after(text: str, i: int) -> str:
    start = text.index("{", i)
    return text[start:matching(text, start)]


def split_top(args: str) -> list[str]:
    """Splits an argument list at top-level commas (a trailing comma is dropped)."""
    parts, depth, cur = [], 0, ""
    for ch in args:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def bare_type(t: str) -> str:
    t = t.strip().rstrip("?").strip()
    t = re.sub(r"\bkotlin\.(collections\.)?", "", t)
    m = re.fullmatch(r"(?:List<(.+)>|\[(.+)\])", t)
    if m:
        return "List<" + bare_type(m.group(1) or m.group(2)) + ">"
    return t


def load_kotlin_api(path: Path) -> dict[str, LibType]:
    text = strip_doc_comments(path.read_text())
    api: dict[str, LibType] = {}

    def fun_member(kind: str, params: str, ret: str | None) -> Member:
        names = re.findall(r"`(\w+)`\s*:", params)
        types = [bare_type(t.split("=")[0]) for t in re.findall(r"`\w+`\s*:\s*([^,]+)", params)]
        required = sum(1 for p in split_top(params) if p.strip() and "=" not in p)
        return Member(kind, names, required, bare_type(ret) if ret else None, types)

    fun_re = re.compile(r"(?:suspend\s+)?fun\s+`(\w+)`\(((?:[^()]|\([^()]*\))*)\)\s*(?::\s*([\w.<>?, ]+?))?\s*(?:\{|=|$)", re.M)
    for m in re.finditer(r"(?m)^public interface (\w+) \{", text):
        name = m.group(1)
        body = block_after(text, m.start())
        owner = name[: -len("Interface")] if name.endswith("Interface") else name
        t = api.setdefault(owner, LibType(owner, "object" if owner != name else "callback"))
        for f in fun_re.finditer(body):
            t.members[f.group(1)] = fun_member("method", f.group(2), f.group(3))
    for m in re.finditer(r"(?m)^open class (\w+)\s*:", text):
        t = api.setdefault(m.group(1), LibType(m.group(1), "object"))
        if t.kind != "object":
            continue
        body = block_after(text, m.start())
        comp = re.search(r"\n    companion object \{", body)
        if comp:
            for f in fun_re.finditer(block_after(body, comp.start())):
                t.members[f.group(1)] = fun_member("static", f.group(2), f.group(3))
        for runtime in ("destroy", "close"):  # Disposable / AutoCloseable, generated for every object
            t.members.setdefault(runtime, Member("method", [], 0, None))
    for m in re.finditer(r"(?m)^data class (\w+) \(", text):
        start = text.index("(", m.start())
        params = text[start + 1 : matching(text, start, "(", ")") - 1]
        t = api[m.group(1)] = LibType(m.group(1), "record")
        fields = re.findall(r"va[rl] `(\w+)`\s*:\s*([^,=\n]+?)\s*(=\s*[^,\n]+)?\s*(?:,|\n|$)", params)
        ctor = Member("static", [f[0] for f in fields], sum(1 for f in fields if not f[2]), m.group(1), [bare_type(f[1]) for f in fields])
        t.members["<init>"] = ctor
        for fname, ftype, _ in fields:
            t.members[fname] = Member("field", [], 0, bare_type(ftype))
    for m in re.finditer(r"(?m)^enum class (\w+) \{", text):
        body = block_after(text, m.start())
        entries = body[1 : body.index(";")] if ";" in body else body[1:-1]
        t = api[m.group(1)] = LibType(m.group(1), "enum")
        for e in re.findall(r"\b([A-Z][A-Z0-9_]*)\b", entries):
            t.members[e] = Member("case", [], 0, m.group(1))
    for m in re.finditer(r"(?m)^sealed class (\w+)", text):
        body = block_after(text, m.start())
        kind = "error" if re.search(r"sealed class \w+\s*:\s*kotlin\.Exception", text[m.start() : m.start() + 200]) else "enum"
        t = api[m.group(1)] = LibType(m.group(1), kind)
        for v in re.finditer(r"(?m)^    (?:data class|class|object) (\w+)\s*(\()?", body):
            params: list[str] = []
            ptypes: list[str] = []
            if v.group(2):
                start = v.end() - 1
                inner = body[start + 1 : matching(body, start, "(", ")") - 1]
                params = re.findall(r"va[lr] `(\w+)`", inner)
                ptypes = [bare_type(x) for x in re.findall(r"va[lr] `\w+`\s*:\s*([^,\n]+)", inner)]
            vt = api[f"{t.name}.{v.group(1)}"] = LibType(f"{t.name}.{v.group(1)}", "variant")
            for p, pt in zip(params, ptypes, strict=False):
                vt.members[p] = Member("field", [], 0, pt)
            t.members[v.group(1)] = Member("variant", params, len(params), vt.name, ptypes)
            t.variants.append(vt.name)
    for m in re.finditer(r"(?m)^(?:\s*\*/)?\s*fun `(\w+)`\(((?:[^()]|\([^()]*\))*)\)\s*(?::\s*([\w.<>?]+))?", text):
        if m.group(0).startswith(" ") and "*/" not in m.group(0):
            continue
        api.setdefault("<top>", LibType("<top>", "top")).members[m.group(1)] = fun_member("static", m.group(2), m.group(3))
    return api


def swift_params(params: str) -> tuple[list[str], int, list[str]]:
    labels, required, types = [], 0, []
    for p in split_top(params):
        head, _, rest = p.partition(":")
        label = head.split()[0] if head.split() else "_"
        labels.append(label)
        types.append(bare_type(rest.split("=")[0]))
        if "=" not in rest:
            required += 1
    return labels, required, types


def load_swift_api(path: Path) -> dict[str, LibType]:
    text = strip_doc_comments(path.read_text())
    api: dict[str, LibType] = {}
    func_re = re.compile(r"func\s+`?(\w+)`?\s*\(((?:[^()]|\([^()]*\))*)\)\s*(?:async\s*)?(?:throws\s*)?(?:->\s*([\w\[\]?.]+))?")
    for m in re.finditer(r"(?m)^public protocol (\w+)\s*:", text):
        name = m.group(1)
        owner = name[: -len("Protocol")] if name.endswith("Protocol") else name
        t = api.setdefault(owner, LibType(owner, "object" if owner != name else "callback"))
        for f in func_re.finditer(block_after(text, m.start())):
            labels, req, types = swift_params(f.group(2))
            t.members[f.group(1)] = Member("method", labels, req, bare_type(f.group(3)) if f.group(3) else None, types)
    for m in re.finditer(r"(?m)^open class (\w+)\s*:", text):
        t = api.setdefault(m.group(1), LibType(m.group(1), "object"))
        # The class repeats the protocol's methods with their default arguments.
        for f in re.finditer(r"open func\s+`?(\w+)`?\s*\(((?:[^()]|\([^()]*\))*)\)", block_after(text, m.start())):
            known = t.members.get(f.group(1))
            if known is not None:
                known.required = min(known.required, swift_params(f.group(2))[1])
        for f in re.finditer(r"public static func\s+`?(\w+)`?\s*\(((?:[^()]|\([^()]*\))*)\)\s*(?:async\s*)?(?:throws\s*)?->\s*(\w+)", block_after(text, m.start())):
            labels, req, types = swift_params(f.group(2))
            t.members[f.group(1)] = Member("static", labels, req, f.group(3), types)
    for m in re.finditer(r"(?m)^public struct (\w+)\s*:\s*Equatable", text):
        body = block_after(text, m.start())
        t = api[m.group(1)] = LibType(m.group(1), "record")
        for fname, ftype in re.findall(r"(?m)^    public (?:var|let) (\w+)\s*:\s*(.+?)\s*$", body):
            t.members[fname] = Member("field", [], 0, bare_type(ftype))
        init = re.search(r"public init\(", body)
        if init:
            start = body.index("(", init.start())
            labels, req, types = swift_params(body[start + 1 : matching(body, start, "(", ")") - 1])
            t.members["<init>"] = Member("static", labels, req, m.group(1), types)
    for m in re.finditer(r"public\s+(?:indirect\s+)?enum\s+(\w+)\s*:\s*([^{]*)\{", text):
        body = block_after(text, m.start())
        kind = "error" if "Error" in m.group(2) else "enum"
        t = api[m.group(1)] = LibType(m.group(1), kind)
        for c in re.finditer(r"\bcase\s+(\w+)\s*(\()?", body):
            if c.group(2):
                start = c.end() - 1
                labels, req, types = swift_params(body[start + 1 : matching(body, start, "(", ")") - 1])
            else:
                labels, req, types = [], 0, []
            t.members[c.group(1)] = Member("case", labels, req, t.name, types)
    for m in re.finditer(r"(?m)^public func\s+(\w+)\s*\(((?:[^()]|\([^()]*\))*)\)\s*(?:async\s*)?(?:throws\s*)?(?:->\s*([\w\[\]?.]+))?", text):
        labels, req, types = swift_params(m.group(2))
        api.setdefault("<top>", LibType("<top>", "top")).members[m.group(1)] = Member("static", labels, req, m.group(3), types)
    return api


# ------------------------------------------------------------------------------ shell sources


@dataclass
class Source:
    path: Path
    lang: Lang
    raw: str
    tree: object
    code: str = ""  # comments and string text blanked (same offsets and lines as raw)
    nocomment: str = ""  # comments blanked, strings kept


def blank(text: bytearray, start: int, end: int) -> None:
    for i in range(start, end):
        if text[i] not in (10, 13):
            text[i] = 32


def load_source(path: Path, lang: Lang) -> Source:
    raw = path.read_bytes()
    tree = lang.parser.parse(raw)
    code, nocomment = bytearray(raw), bytearray(raw)

    def walk(n):
        if n.type in lang.comments:
            blank(code, n.start_byte, n.end_byte)
            blank(nocomment, n.start_byte, n.end_byte)
            return
        if n.type in lang.string_text:
            blank(code, n.start_byte, n.end_byte)
            return
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return Source(path, lang, raw.decode(), tree, code.decode(), nocomment.decode())


IMPORT_NODES = frozenset({"package_header", "import_header", "import_list", "import_declaration", "package_directive",
                          "import"})


def code_lines(src: Source, imports: bool = False) -> int:
    """Lines holding a token that is not a comment; `imports`: also package and import lines."""
    rows: set[int] = set()

    def walk(n):
        if n.type in src.lang.comments or (not imports and n.type in IMPORT_NODES):
            return
        if n.child_count == 0:
            if n.end_byte > n.start_byte:
                rows.update(range(n.start_point[0], n.end_point[0] + 1))
            return
        for c in n.children:
            walk(c)

    walk(src.tree.root_node)
    return len(rows)


def syntax_errors(src: Source) -> list[str]:
    found = []

    def walk(n):
        if n.type == "ERROR" or n.is_missing:
            found.append(f"line {n.start_point[0] + 1}: {'missing ' + n.type if n.is_missing else 'cannot parse'} "
                         f"{src.raw.encode()[n.start_byte:n.end_byte].decode()[:50]!r}")
            return
        for c in n.children:
            walk(c)

    walk(src.tree.root_node)
    return found


def line_of(text: str, i: int) -> int:
    return text.count("\n", 0, i) + 1


# ------------------------------------------------------------------------------ API uses


@dataclass
class Results:
    rows: list[tuple[bool, str, str]] = field(default_factory=list)  # (ok, name, detail)

    def add(self, ok: bool, name: str, detail: str = "") -> None:
        self.rows.append((ok, name, detail))

    @property
    def failed(self) -> int:
        return sum(1 for ok, _, _ in self.rows if not ok)


BRACKETS = {"{": 1, "(": 1, "[": 1, "}": -1, ")": -1, "]": -1}
ELEMENT_OPS = {"first", "firstOrNull", "last", "lastOrNull", "find", "single", "singleOrNull", "get"}
IDENT = r"[A-Za-z_]\w*"


class ApiChecker:
    """Follows chains like `device.startCall(...).first.url` through the bindings' types."""

    def __init__(self, lang: Lang, api: dict[str, LibType], sources: list[Source]):
        self.lang, self.api, self.sources = lang, api, sources
        self.uses: dict[str, list[str]] = {}  # "Type.member" -> problems ([] when fine)
        self.where: dict[str, list[str]] = {}
        self.sites: dict[str, list[tuple[Source, int]]] = {}  # "Type.member" -> (source, offset of the expression)
        self.vars: dict[str, set[str]] = {}
        # Per file, names declared there only with a type that is not the library's (`session: RepSession`
        # in one file, `session: RemoteSession` in another): not typed by the other files' declarations there.
        self.shadowed: dict[Path, set[str]] = {}

    def lib(self, t: str | None) -> LibType | None:
        return self.api.get(t) if t else None

    def note(self, key: str, src: Source, pos: int, problem: str | None = None) -> None:
        self.uses.setdefault(key, [])
        self.where.setdefault(key, []).append(f"{src.path.name}:{line_of(src.code, pos)}")
        self.sites.setdefault(key, []).append((src, pos))
        if problem:
            self.uses[key].append(f"{src.path.name}:{line_of(src.code, pos)}: {problem}")

    # -- typing names

    def declare(self, name: str, t: str) -> None:
        t = bare_type(t)
        inner = t[5:-1] if t.startswith("List<") else t
        if inner in self.api or t in self.api:
            self.vars.setdefault(name, set()).add(t)

    def collect_declarations(self) -> None:
        decl = re.compile(rf"\b({IDENT})\s*:\s*((?:List<)?\[?[A-Z][\w.]*(?:>|\])?\??)")
        other = re.compile(rf"\b({IDENT}):\s*(?:(?:any|some)\s+)?([A-Z]\w*)\b(?![<.(\]])")
        for src in self.sources:
            for m in decl.finditer(src.code):
                if src.code[m.end(1) : m.start(2)].startswith(" "):  # `class Foo : Bar` (Kotlin), not a typed value
                    continue
                if m.group(2).rstrip("?") in self.api or m.group(2).startswith(("List<", "[")):
                    self.declare(m.group(1), m.group(2))
            declared = [(m.group(1), m.group(2) in self.api) for m in other.finditer(src.code)]
            self.shadowed[src.path] = {n for n, lib in declared if not lib} - {n for n, lib in declared if lib}
        # `val/var/let x = <chain>`: typed by the chain, repeated until nothing new is learned.
        assign = re.compile(rf"\b(?:val|var|let)\s+({IDENT})\s*=\s*(?:(?:try[?!]?|await)\s+)*")
        for _ in range(3):
            for src in self.sources:
                for m in assign.finditer(src.code):
                    t = self.chain(src, m.end(), check=False)
                    if t:
                        self.declare(m.group(1), t)
                        self.shadowed[src.path].discard(m.group(1))  # typed in this file after all

    # -- chains

    def call_args(self, src: Source, i: int) -> tuple[list[str], int]:
        end = matching(src.code, i, "(", ")")
        return split_top(src.code[i + 1 : end - 1]), end

    def check_call(self, src: Source, pos: int, key: str, m: Member, args: list[str]) -> None:
        problems = []
        if self.lang is KOTLIN:
            named = [re.match(rf"({IDENT})\s*=(?!=)", a) for a in args]
            if any(named):
                names = [n.group(1) for n in named if n]
                unknown = [n for n in names if n not in m.params]
                missing = [p for p in m.params[: m.required] if p not in names]
                if unknown or missing:
                    problems.append(f"arguments {names}, expected {m.params}")
            elif not m.required <= len(args) <= len(m.params):
                problems.append(f"{len(args)} arguments, expected {m.params}")
        else:
            labels = []
            for a in args:
                lm = re.match(rf"({IDENT})\s*:(?!:)", a)
                labels.append(lm.group(1) if lm else "_")
            # Defaulted parameters may be left out; the rest must appear, labelled, in order.
            it = iter(zip(m.params, range(len(m.params)), strict=True))
            ok = True
            for lab in labels:
                for p, idx in it:
                    if p == lab:
                        break
                    if idx < m.required:
                        ok = False
                        break
                else:
                    ok = False
                if not ok:
                    break
            if ok:
                consumed = [p for p in m.params if p in labels]
                ok = all(p in consumed for p in m.params[: m.required])
            if not ok:
                problems.append(f"labels ({', '.join(x + ':' for x in labels)}), expected ({', '.join(p + ':' for p in m.params)})")
            for a, lab in zip(args, labels, strict=True):  # `.faceToFace` for a library enum parameter
                case = re.fullmatch(rf"(?:{IDENT}\s*:\s*)?\.({IDENT})", a)
                if case and lab in m.params:
                    enum = self.lib(m.param_types[m.params.index(lab)] if m.param_types else None)
                    if enum and enum.kind in ("enum", "error"):
                        ck = f"{enum.name}.{case.group(1)}"
                        self.note(ck, src, pos, None if case.group(1) in enum.members else f"{enum.name} has no case {case.group(1)}")
        self.note(key, src, pos, "; ".join(problems) or None)

    def chain(self, src: Source, i: int, check: bool = True) -> str | None:
        """Types the expression starting at src.code[i]; records every library use on the way."""
        code = src.code
        m = re.compile(IDENT).match(code, i)
        if not m:
            return None
        name, j = m.group(0), m.end()
        static = False
        if name in self.vars and name not in self.shadowed.get(src.path, ()):
            cur = sorted(self.vars[name])[0]
        elif name in self.api and name != "<top>":
            cur, static = name, True
        elif "<top>" in self.api and name in self.api["<top>"].members and code[j : j + 1] == "(":
            mem = self.api["<top>"].members[name]
            args, j = self.call_args(src, j)
            if check:
                self.check_call(src, i, name, mem, args)
            cur = mem.ret
        else:
            return None
        while True:
            if static and code[j : j + 1] == "(":  # DeviceOptions(...), a record constructor
                t = self.lib(cur)
                init = t.members.get("<init>") if t else None
                if not init:
                    return None
                args, j = self.call_args(src, j)
                if check:
                    self.check_call(src, i, f"{cur}(…)", init, args)
                cur, static = cur, False
                continue
            step = re.compile(rf"\s*(?:\?|!!)?\s*\.\s*({IDENT})").match(code, j)
            if not step:
                return cur
            member, j = step.group(1), step.end()
            has_call = code[j : j + 1] == "("
            if cur and cur.startswith("List<"):
                if member in ELEMENT_OPS:
                    if has_call:
                        _, j = self.call_args(src, j)
                    lam = re.compile(r"\s*\{").match(code, j)
                    if lam:
                        j = matching(code, code.index("{", j))
                    cur = cur[5:-1]
                    continue
                return None
            t = self.lib(cur)
            if not t:
                return None
            if member in self.lang.platform_members and member not in t.members:
                return None
            mem, key = t.members.get(member), f"{t.name}.{member}"
            if mem is None:  # a smart-cast error variant's field (`e.retryable` after `is SyncFailed`)
                for v in t.variants:
                    if member in self.api[v].members:
                        mem, key = self.api[v].members[member], f"{v}.{member}"
            if mem is None:
                if check:
                    self.note(key, src, i, f"{t.name} has no {'method' if has_call else 'member'} {member!r} in the bindings")
                return None
            if has_call:
                args, j = self.call_args(src, j)
                if check:
                    if mem.kind == "field":
                        self.note(key, src, i, f"{key} is a field, not a method")
                    else:
                        self.check_call(src, i, key, mem, args)
            elif check:
                if mem.kind in ("method", "static") and self.lang is KOTLIN and not re.match(r"\s*\{", code[j:]):
                    self.note(key, src, i, f"{key} is a method: call it")
                else:
                    self.note(key, src, i)
            cur, static = mem.ret, (mem.kind == "variant" and not has_call and self.lang is KOTLIN)
            if mem.kind == "variant" and has_call:
                cur = t.name

    def check_callbacks(self, src: Source) -> None:
        """Classes implementing TokenProvider / SyncListener implement exactly its methods."""
        code = src.code
        if self.lang is KOTLIN:
            head = re.compile(rf"\b(?:class|object)\s+({IDENT})(?:\s*\([^)]*\))?\s*:\s*([^{{]+)\{{")
            meth = re.compile(rf"\boverride\s+(?:suspend\s+)?fun\s+({IDENT})\s*\(([^)]*)\)")
        else:
            head = re.compile(rf"\b(?:final\s+)?(?:class|struct|actor)\s+({IDENT})\s*:\s*([^{{]+)\{{")
            meth = re.compile(rf"\bfunc\s+({IDENT})\s*\(([^)]*)\)")
        for h in head.finditer(code):
            supers = [s.strip().split("(")[0].split("<")[0] for s in h.group(2).split(",")]
            for sup in supers:
                t = self.lib(sup)
                if not t or t.kind != "callback":
                    continue
                body = block_after(code, h.start())
                seen = set()
                for f in meth.finditer(body):
                    key = f"{sup}.{f.group(1)} (implemented)"
                    pos = code.index("{", h.start()) + f.start()
                    mem = t.members.get(f.group(1))
                    if mem is None:
                        self.note(key, src, pos, f"{sup} has no method {f.group(1)!r}")
                        continue
                    seen.add(f.group(1))
                    params = split_top(f.group(2))
                    if self.lang is SWIFT:
                        labels = [p.split(":")[0].split()[0] for p in params]
                        ok = labels == mem.params
                    else:
                        ok = len(params) == len(mem.params)
                    self.note(key, src, pos, None if ok else f"parameters ({f.group(2)}), expected {mem.params}")
                for missing in sorted(set(t.members) - seen):
                    self.note(f"{sup}.{missing} (implemented)", src, h.start(), f"{h.group(1)} does not implement {sup}.{missing}")

    def run(self) -> dict[str, list[str]]:
        self.collect_declarations()
        starts = re.compile(rf"(?<![\w.$])({IDENT})(?=\s*(?:\?|!!)?\s*[.(])")
        for src in self.sources:
            for m in starts.finditer(src.code):
                name = m.group(1)
                if name in self.vars or name in self.api or ("<top>" in self.api and name in self.api["<top>"].members):
                    # skip declarations of functions/properties named like a library value
                    before = src.code[max(0, m.start() - 12) : m.start()]
                    if re.search(r"\b(fun|func|class|object|struct|enum)\s+$", before):
                        continue
                    self.chain(src, m.start())
            self.check_callbacks(src)
            if self.lang is SWIFT:
                self.check_case_patterns(src)
        return self.uses

    def check_case_patterns(self, src: Source) -> None:
        """Swift `.case` patterns matched against a library enum: the labels of `switch <value> {` and
        `if/guard/while case .x = <value>` (Kotlin's `is Type.Variant` / `Type.Entry` are references)."""
        code = src.code

        def note_case(enum: LibType, name: str, pos: int) -> None:
            self.note(f"{enum.name}.{name}", src, pos, None if name in enum.members else f"{enum.name} has no case {name}")

        for m in re.finditer(r"\bswitch\s+", code):
            enum = self.lib(self.chain(src, m.end(), check=False))
            if not enum or enum.kind not in ("enum", "error") or "{" not in code[m.end() :]:
                continue
            start = code.index("{", m.end())
            end, depth, i = matching(code, start), 0, start + 1
            while i < end - 1:  # the labels at the switch's own level (nested switches are checked on their own)
                ch = code[i]
                depth += BRACKETS.get(ch, 0)
                label = re.compile(r"\bcase\b").match(code, i) if depth == 0 and not re.match(r"\w", code[i - 1]) else None
                if label and re.search(r"\b(?:if|guard|while|for)\s+$", code[max(0, i - 10) : i]):  # `if case` in a case body
                    label = None
                if label is None:
                    i += 1
                    continue
                j, d = label.end(), 0
                while j < end and not (code[j] == ":" and d == 0):
                    d += BRACKETS.get(code[j], 0)
                    j += 1
                for pattern in split_top(code[label.end() : j].split(" where ")[0]):
                    case = re.match(rf"(?:(?:let|var)\s+)?\.({IDENT})", pattern)
                    if case:
                        note_case(enum, case.group(1), label.start())
                i = j + 1
        for m in re.finditer(rf"\b(?:if|guard|while)\s+case\s+(?:(?:let|var)\s+)?\.({IDENT})[^=\n]*?=\s*", code):
            enum = self.lib(self.chain(src, m.end(), check=False))
            if enum and enum.kind in ("enum", "error"):
                note_case(enum, m.group(1), m.start())


# ------------------------------------------------------------------------------ bridge + config


def js_contract(js: str) -> dict[str, str | None]:
    def find(pattern: str) -> str | None:
        m = re.search(pattern, js)
        return m.group(1) if m else None

    return {
        "ios_handler": find(r"window\.webkit\.messageHandlers\.(\w+)\.postMessage"),
        "android_interface": find(r"var android = window\.(\w+);"),
        "android_method": find(r"window\.(?:EdetailAndroid|%s)\.(\w+)\(" % (find(r"var android = window\.(\w+);") or "X")),
        "receive": find(r"\b(_receive)\s*:\s*receive\b"),
        "global": find(r"window\.(\w+)\s*=\s*api;"),
    }


def check_bridge(res: Results, shell: str, sources: list[Source], js: dict[str, str | None]) -> None:
    text = "\n".join(s.nocomment for s in sources)
    reply = f"window.{js['global']}.{js['receive']}("
    res.add(reply in text and None not in (js["global"], js["receive"]), f"bridge {shell}: replies through {reply}…)",
            "" if reply in text else f"no evaluate call with {reply!r} in the shell")
    if shell == "android":
        m = re.search(r'addJavascriptInterface\(\s*[^,]+,\s*"(\w+)"\s*\)', text)
        got = m.group(1) if m else None
        res.add(got == js["android_interface"] is not None, f"bridge android: interface name {got!r}",
                f"edetail.js looks for window.{js['android_interface']}")
        meth = re.search(r"@JavascriptInterface\s+fun\s+(\w+)\s*\(\s*\w+\s*:\s*String\s*\)", text)
        got = meth.group(1) if meth else None
        res.add(got == js["android_method"] is not None, f"bridge android: @JavascriptInterface fun {got}(String)",
                f"edetail.js calls window.{js['android_interface']}.{js['android_method']}(string)")
    else:
        m = re.search(r'\.add\(\s*[^,]+,\s*name:\s*"(\w+)"\s*\)', text)
        got = m.group(1) if m else None
        res.add(got == js["ios_handler"] is not None, f"bridge ios: message handler name {got!r}",
                f"edetail.js posts to window.webkit.messageHandlers.{js['ios_handler']}")


def containers_contract(js_dir: Path) -> dict[str, object]:
    """What the shells must match, read from the runtime itself: the scripts the core serves at
    /_edetail/ and the window.edetailContainers functions (and webkit handler names) of containers.js."""
    assets = (js_dir.parent / "src/assets.rs").read_text()
    containers = (js_dir / "containers.js").read_text()
    m = re.search(r"window\.edetailContainers\s*=\s*\{", containers)
    surface = containers[m.end() - 1 : matching(containers, m.end() - 1)] if m else ""

    def export(ns: str, fn: str) -> str | None:
        block = re.search(rf"\b{ns}:\s*\{{([^{{}}]*)\}}", surface)
        return f"window.edetailContainers.{ns}.{fn}" if block and re.search(rf"\b{fn}:", block.group(1)) else None

    return {
        "scripts": re.findall(r'"([\w-]+\.js)"\s*=>', assets),
        # URL scheme or message handler name -> the function the shell hands the value to.
        "schemes": {"veeva": export("veeva", "request"), "objc": export("agnitio", "invoke")},
        "handlers": {name: export(ns, fn) for name, ns, fn in (("veeva", "veeva", "request"), ("nativeCall", "oce", "nativeCall"))
                     if re.search(rf'installWebkit\("{name}"', containers)},
    }


def check_containers(res: Results, shell: str, root: Path, sources: list[Source], uses: dict[str, list[str]],
                     contract: dict[str, object]) -> None:
    text = "\n".join(s.nocomment for s in sources)
    kotlin = shell == "android"
    name = f"containers {shell}"
    scripts: list[str] = contract["scripts"]  # type: ignore[assignment]
    missing = [s for s in scripts if f'"{s}"' not in text and f'"/_edetail/{s}"' not in text]
    order = [text.find(f'"{s}"') for s in ("edetail.js", "containers.js")]
    res.add(len(scripts) >= 3 and not missing and -1 < order[0] < order[1], f"{name}: runtime scripts {scripts}, edetail.js before containers.js",
            f"missing {missing}" if missing else "containers.js named before edetail.js (it needs edetail.js)")
    res.add(re.search(r'resolveAsset\((?:urlPath:\s*)?"/_edetail/', text) is not None, f"{name}: runtime scripts read through resolveAsset(\"/_edetail/…\")")
    veeva_case = "BridgeKind.VEEVA" if kotlin else "BridgeKind.veeva"
    res.add(veeva_case in text and "veeva-clm.js" in text, f"{name}: veeva-clm.js only in slides whose bridge is {veeva_case}")
    if kotlin:
        res.add("WebViewFeature.isFeatureSupported(WebViewFeature.DOCUMENT_START_SCRIPT)" in text
                and re.search(r"WebViewCompat\.addDocumentStartJavaScript\(\s*\w+\s*,", text) is not None,
                f"{name}: feature-detected WebViewCompat.addDocumentStartJavaScript")
        res.add(re.search(r'Regex\("<head', text) is not None and '<script src=\\"/_edetail/' in text and "shouldInterceptRequest" in text,
                f"{name}: fallback <script src=\"/_edetail/…\"> tags after <head> in shouldInterceptRequest")
        gradle = next(root.glob("**/build.gradle.kts"), None)
        res.add(gradle is not None and '"androidx.webkit:webkit:' in gradle.read_text(), f"{name}: app/build.gradle.kts depends on androidx.webkit")
    else:
        res.add(re.search(r"WKUserScript\(\s*source:.*?injectionTime:\s*\.atDocumentStart\s*,\s*forMainFrameOnly:\s*false\s*\)", text) is not None
                and ".addUserScript(" in text, f"{name}: WKUserScript at .atDocumentStart, forMainFrameOnly: false, added")
    pairs = dict(contract["schemes"])  # type: ignore[arg-type]
    if not kotlin:
        pairs.update(contract["handlers"])  # type: ignore[arg-type]
    for key, call in sorted(pairs.items()):
        found = call is not None and re.search(rf'"{key}"\s*(?:to|:)\s*"{re.escape(call)}"', text) is not None
        res.add(found, f"{name}: {key!r} handed to {call}", "containers.js exports no such function" if call is None else f'no "{key}" mapped to "{call}"')
    if kotlin:
        res.add(re.search(r"override fun shouldOverrideUrlLoading\([^)]*\)[^{]*\{[^}]*\.scheme", text) is not None,
                f"{name}: shouldOverrideUrlLoading intercepts by URL scheme")
        safe = re.findall(r'edetailContainers && \$\{?\w+\}?\((.{0,40})', text)
        res.add(bool(safe) and all(a.startswith("${JSONObject.quote(") for a in safe), f"{name}: URLs handed over as JSON literals (JSONObject.quote)",
                f"arguments: {safe}")
        interfaces = re.findall(r"addJavascriptInterface\(", text)
        res.add(len(interfaces) == 1, f"{name}: no JavaScript interface beyond the bridge's", f"{len(interfaces)} addJavascriptInterface calls")
    else:
        res.add(re.search(r"decidePolicyFor\s+\w+:\s*WKNavigationAction", text) is not None and "decisionHandler(.cancel)" in text
                and re.search(r"\.navigationDelegate\s*=", text) is not None, f"{name}: decidePolicyFor cancels container navigations (navigationDelegate set)")
        handlers: dict[str, str | None] = contract["handlers"]  # type: ignore[assignment]
        for h in sorted(handlers):
            res.add(re.search(rf'\.add\(\s*[^,]+,\s*name:\s*"{h}"\s*\)', text) is not None, f"{name}: native message handler {h!r} registered")
        res.add("removeAllScriptMessageHandlers()" in text, f"{name}: message handlers removed when the view goes (they retain the coordinator)")
        args = re.findall(r'edetailContainers && \\\(\w+\)\(\\\(((?:Self\.)?\w+)\(', text)
        helpers = {a.split(".")[-1] for a in args}
        bodies = {h: re.search(rf"func {h}\([^)]*\)[^{{]*\{{", text) for h in helpers}
        ok = bool(args) and all(b is not None and "JSONSerialization" in text[b.end() : b.end() + 400] for b in bodies.values())
        res.add(ok and len(args) == len(re.findall(r"edetailContainers && ", text)), f"{name}: values handed over as JSON literals ({sorted(helpers)})",
                "every `window.edetailContainers && <call>(…)` must wrap its argument in a JSONSerialization helper")
    if kotlin:
        moved = re.search(r'optJSONObject\("navigate"\)', text) and re.search(r'optBoolean\(\s*"moved"\s*,\s*true\s*\)', text)
    else:
        moved = re.search(r'\["navigate"\]', text) and re.search(r'\["moved"\]\s*as\?\s*Bool\s*==\s*false', text)
    res.add(bool(moved), f"{name}: bridge replies: a result's `navigate` followed, not when `moved` is false")
    if "EdetailDevice.navigate" in uses:
        res.add("SlideTarget.moved" in uses, f"{name}: FFI navigate: SlideTarget.moved read before reloading", "the shell calls navigate and never reads .moved")
    else:
        res.add(False, f"{name}: FFI navigate (the shell's own navigation) used", "no EdetailDevice.navigate call found")
    if kotlin:
        res.add(re.search(r"useWideViewPort\s*=\s*true", text) is not None and re.search(r"loadWithOverviewMode\s*=\s*true", text) is not None,
                f"{name}: wide viewport (useWideViewPort, loadWithOverviewMode)")
    readme = root / "README.md"
    section = re.search(r"(?ms)^## Decks made for other vendors\n(.*?)(?=^## |\Z)", readme.read_text()) if readme.exists() else None
    words = ("containers.js", "veeva", "objc", "moved", "viewport")
    res.add(section is not None and all(w in section.group(1) for w in words), f"{name}: README.md has 'Decks made for other vendors'",
            f"a '## Decks made for other vendors' section naming {words}")


# Remote detailing (ADR 0023): what the shells' "Present remotely" flow must do with RemoteSession.
REMOTE_CALLS = ("EdetailDevice.openRemoteSession", "RemoteSession.joinUrl", "RemoteSession.nextEvent", "RemoteSession.admit",
                "RemoteSession.setControl", "RemoteSession.end")
REMOTE_EVENTS = ("AttendeeJoined", "Navigated", "Disconnected", "Ended", "Replaced")
# Calls that block (a network request, or up to the timeout): never on the main thread.
REMOTE_BLOCKING = ("EdetailDevice.openRemoteSession", "RemoteSession.nextEvent", "RemoteSession.end", "RemoteSession.relink")
# What a block is run on, from the text before its `{` on the same line.
MAIN_THREAD = {
    "android": re.compile(r"(?:Dispatchers\.Main(?:\.immediate)?\s*\)|\brunOnUiThread|\.post)\s*$"),
    "ios": re.compile(r"(?:DispatchQueue\.main\.async(?:After\([^)]*\))?|MainActor\.run)\s*$"),
}
BACKGROUND_THREAD = {
    "android": re.compile(r"(?:\b(?:launch|async|withContext)\(\s*Dispatchers\.IO\s*\)|\bthread(?:\([^)]*\))?|\bonDevice|\.execute)\s*$"),
    "ios": re.compile(r"(?:DispatchQueue\.global\([^)]*\)\.async|\b(?!main\b)\w+\.async|Thread\.detachNewThread|Task\.detached(?:\([^)]*\))?)\s*$"),
}


def enclosing_blocks(code: str, pos: int) -> list[int]:
    """Offsets of the `{` around code[pos], innermost first."""
    stack: list[int] = []
    for i, ch in enumerate(code[:pos]):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            stack.pop()
    return stack[::-1]


def runs_on(shell: str, code: str, pos: int) -> str | None:
    """"main" or "background" for the innermost enclosing block that says; None when none does."""
    for b in enclosing_blocks(code, pos):
        head = code[code.rfind("\n", 0, b) + 1 : b]
        if MAIN_THREAD[shell].search(head):
            return "main"
        if BACKGROUND_THREAD[shell].search(head):
            return "background"
    return None


def check_remote(res: Results, shell: str, root: Path, sources: list[Source], checker: ApiChecker) -> None:
    name = f"remote {shell}"
    uses = checker.uses
    missing = [k for k in REMOTE_CALLS if k not in uses]
    res.add(not missing, f"{name}: the flow's library calls ({', '.join(k.split('.')[1] for k in REMOTE_CALLS)})", f"not called: {missing}" if missing else "")
    cased = {k.lower() for k in uses}
    unhandled = [e for e in REMOTE_EVENTS if f"remoteevent.{e.lower()}" not in cased]
    res.add(not unhandled, f"{name}: events handled ({', '.join(REMOTE_EVENTS)})", f"no RemoteEvent {unhandled} in the shell" if unhandled else "")
    wrong = [f"{src.path.name}:{line_of(src.code, pos)} {key.split('.')[1]} ({runs_on(shell, src.code, pos) or 'no thread of its own'})"
             for key in REMOTE_BLOCKING for src, pos in checker.sites.get(key, []) if runs_on(shell, src.code, pos) != "background"]
    res.add(not wrong and "EdetailDevice.openRemoteSession" in uses, f"{name}: blocking calls off the main thread ({', '.join(k.split('.')[1] for k in REMOTE_BLOCKING)})",
            "; ".join(wrong) or ("" if "EdetailDevice.openRemoteSession" in uses else "no openRemoteSession call"))
    # The event loop: the `while` around nextEvent leaves it on Ended and on Replaced.
    ends = ("RemoteEvent.Ended", "RemoteEvent.Replaced") if shell == "android" else (".ended", ".replaced")
    loops = []
    for src, pos in checker.sites.get("RemoteSession.nextEvent", []):
        loop = next((b for b in enclosing_blocks(src.code, pos) if re.search(r"\bwhile\b", src.code[src.code.rfind("\n", 0, b) + 1 : b])), None)
        body = src.code[loop : matching(src.code, loop)] if loop is not None else ""
        loops.append(all(e in body for e in ends) and re.search(r"\b(?:break|return)\b", body) is not None)
    res.add(bool(loops) and all(loops), f"{name}: the event loop (a `while` around nextEvent) stops at {' and '.join(ends)}")
    text = "\n".join(s.nocomment for s in sources)
    if shell == "android":
        shared = all(w in text for w in ("Intent.ACTION_SEND", "Intent.EXTRA_TEXT", "Intent.createChooser("))
        res.add(shared, f"{name}: join link shared through the share sheet (ACTION_SEND, EXTRA_TEXT, createChooser)")
    else:
        res.add("UIActivityViewController(activityItems:" in text, f"{name}: join link shared through UIActivityViewController")
        res.add("CIFilter.qrCodeGenerator()" in text or '"CIQRCodeGenerator"' in text, f"{name}: join link as a QR code (CIQRCodeGenerator)")
    readme = root / "README.md"
    section = re.search(r"(?ms)^## Remote presenting\n(.*?)(?=^## |\Z)", readme.read_text()) if readme.exists() else None
    words = ("openRemoteSession", "nextEvent", "admit", "setControl", "end()")
    res.add(section is not None and all(w in section.group(1) for w in words), f"{name}: README.md has 'Remote presenting'",
            f"a '## Remote presenting' section naming {words}")


def check_android_config(res: Results, root: Path, sources: list[Source]) -> None:
    manifest_path = next(root.glob("**/AndroidManifest.xml"), None)
    if manifest_path is None:
        res.add(False, "config android: AndroidManifest.xml", "not found")
        return
    manifest = manifest_path.read_text()
    code = "\n".join(s.code for s in sources)
    for name in re.findall(r'android:name="\.(\w+)"', manifest):
        res.add(re.search(rf"\bclass\s+{name}\b", code) is not None, f"config android: manifest class .{name} exists")
    needs = {"android.permission.INTERNET": True, "android.permission.ACCESS_NETWORK_STATE": "registerDefaultNetworkCallback" in code}
    for perm, needed in needs.items():
        if needed:
            res.add(f'"{perm}"' in manifest, f"config android: manifest has {perm}")


def check_ios_config(res: Results, root: Path, sources: list[Source]) -> None:
    plist_path = next(root.glob("**/Info.plist"), None)
    if plist_path is None:
        res.add(False, "config ios: Info.plist", "not found")
        return
    try:
        plist = plistlib.loads(plist_path.read_bytes())
    except Exception as e:  # noqa: BLE001 - any parse failure is the finding
        res.add(False, "config ios: Info.plist parses", str(e))
        return
    permitted = set(plist.get("BGTaskSchedulerPermittedIdentifiers", []))
    literals = set(re.findall(r'"([a-z][\w-]*(?:\.[\w-]+){2,})"', "\n".join(s.nocomment for s in sources)))
    bg = {lit for lit in literals if lit in permitted or re.search(r"sync|refresh|task", lit.split(".")[-1])}
    res.add(bool(permitted) and permitted == bg, f"config ios: BGTaskSchedulerPermittedIdentifiers {sorted(permitted)}",
            f"the Swift code uses {sorted(bg)}")
    code = "\n".join(s.code for s in sources)
    modes = set(plist.get("UIBackgroundModes", []))
    for request, mode in (("BGProcessingTaskRequest", "processing"), ("BGAppRefreshTaskRequest", "fetch")):
        if request in code:
            res.add(mode in modes, f"config ios: UIBackgroundModes has {mode!r} ({request})")


# ------------------------------------------------------------------------------ running


@dataclass
class Shell:
    name: str
    dir: Path
    lang: Lang


def shells(root: Path) -> list[Shell]:
    return [Shell("android", root / "examples/android-shell", KOTLIN), Shell("ios", root / "examples/ios-shell", SWIFT)]


def check(root: Path, apis: dict[str, dict[str, LibType]], js_path: Path) -> Results:
    res = Results()
    js = js_contract(js_path.read_text())
    contract = containers_contract(js_path.parent)
    for shell in shells(root):
        files = sorted(p for p in shell.dir.rglob(f"*{shell.lang.ext}") if p.is_file())
        if not files:
            res.add(False, f"size {shell.name}", f"no {shell.lang.ext} files under {shell.dir}")
            continue
        sources = [load_source(p, shell.lang) for p in files]
        total = sum(code_lines(s) for s in sources)
        with_imports = sum(code_lines(s, imports=True) for s in sources)
        physical = sum(s.raw.count("\n") for s in sources)
        per_file = ", ".join(f"{s.path.name} {code_lines(s)}" for s in sources)
        remote = sum(code_lines(s) for s in sources if s.path.stem == REMOTE_FILE)
        res.add(total < MAX_CODE_LINES, f"size {shell.name}: {total} code lines (< {MAX_CODE_LINES}; {remote} of them in {REMOTE_FILE}{shell.lang.ext}; "
                f"{with_imports} with package/import lines, {physical} with comments and blanks too)", per_file)
        readme = shell.dir / "README.md"
        stated = re.search(r"\*\*(\d+) lines of \w+ code\*\*", readme.read_text()) if readme.exists() else None
        res.add(stated is not None and int(stated.group(1)) == total, f"size {shell.name}: README.md states the count",
                f"README says {stated.group(1) if stated else 'nothing'} ('**N lines of <Language> code**'), the count is {total}")
        for s in sources:
            errs = syntax_errors(s)
            res.add(not errs, f"syntax {shell.name}: {s.path.relative_to(shell.dir)} parses ({shell.lang.name})", "; ".join(errs[:5]))
        checker = ApiChecker(shell.lang, apis[shell.lang.name], sources)
        uses = checker.run()
        for key in sorted(uses):
            res.add(not uses[key], f"api {shell.name}: {key}", "; ".join(uses[key]) or "used at " + ", ".join(checker.where[key]))
        res.add(len(uses) >= 15, f"api {shell.name}: {len(uses)} distinct library uses found",
                "too few: the extraction itself is broken" if len(uses) < 15 else "")
        check_bridge(res, shell.name, sources, js)
        check_containers(res, shell.name, shell.dir, sources, uses, contract)
        check_remote(res, shell.name, shell.dir, sources, checker)
        (check_android_config if shell.name == "android" else check_ios_config)(res, shell.dir, sources)
    return res


# Doctored copies the checks must catch: (description, shell, file glob, old, new, expected failing check prefix).
MUTATIONS = [
    ("a renamed library method (Kotlin)", "android", "**/SlideWebViewClient.kt", "resolveAsset(", "resolveAssets(", "api android"),
    ("a wrong argument count (Kotlin)", "android", "**/SlideWebViewClient.kt", "resolveAsset(request.url.encodedPath ?: \"/\", range)", "resolveAsset(request.url.encodedPath ?: \"/\")", "api android"),
    ("an unknown enum entry (Kotlin)", "android", "**/EdetailApp.kt", "AppLifecycle.FOREGROUND", "AppLifecycle.FOREGROUNDED", "api android"),
    ("a record field that does not exist (Kotlin)", "android", "**/PresenterActivity.kt", "call.first.url", "call.first.path", "api android"),
    ("a callback method that does not exist (Kotlin)", "android", "**/EdetailApp.kt", "override suspend fun refresh()", "override suspend fun renew()", "api android"),
    ("a Kotlin syntax error", "android", "**/SyncWorker.kt", "return try {", "return try {{", "syntax android"),
    ("a wrong JavaScript interface name", "android", "**/PresenterActivity.kt", '"EdetailAndroid"', '"Edetail"', "bridge android"),
    ("a renamed library method (Swift)", "ios", "**/AssetSchemeHandler.swift", "resolveAsset(", "resolveAssets(", "api ios"),
    ("a wrong argument label (Swift)", "ios", "**/AssetSchemeHandler.swift", "read(maxBytes:", "read(max:", "api ios"),
    ("an unknown enum case (Swift)", "ios", "**/*.swift", "channel: .faceToFace", "channel: .inPerson", "api ios"),
    ("a Swift syntax error", "ios", "**/AssetSchemeHandler.swift", "func webView(", "func webView((", "syntax ios"),
    ("a wrong message handler name", "ios", "**/*.swift", 'name: "edetail"', 'name: "edetailBridge"', "bridge ios"),
    ("a BGTask identifier missing from Info.plist", "ios", "**/Info.plist", "<string>com.example.edetail.sync</string>", "", "config ios"),
    ("a permission missing from the manifest", "android", "**/AndroidManifest.xml", '<uses-permission android:name="android.permission.ACCESS_NETWORK_STATE" />', "", "config android"),
    ("a reply through the wrong JavaScript function", "ios", "**/PresenterView.swift", "window.edetail && window.edetail._receive(", "window.edetail && window.edetail.receive(", "bridge ios"),
    ("a stale line count in a README", "ios", "README.md", r"re:\*\*\d+ lines of", "**1 lines of", "size ios: README"),
    # Vendor containers (ADR 0013).
    ("a runtime script misnamed (Kotlin)", "android", "**/SlideWebViewClient.kt", '"containers.js"', '"container.js"', "containers android"),
    ("no document-start script (Kotlin)", "android", "**/PresenterActivity.kt", "WebViewCompat.addDocumentStartJavaScript(", "WebViewCompat.addJavascriptOnEvent(", "containers android"),
    ("no <script> fallback (Kotlin)", "android", "**/SlideWebViewClient.kt", 'Regex("<head', 'Regex("<body', "containers android"),
    ("a URL spliced raw into JavaScript (Kotlin)", "android", "**/SlideWebViewClient.kt", "${JSONObject.quote(request.url.toString())}", "'${request.url}'", "containers android"),
    ("objc:// handed to the wrong function (Kotlin)", "android", "**/SlideWebViewClient.kt", "agnitio.invoke", "agnitio.call", "containers android"),
    ("moved: false followed anyway (Kotlin)", "android", "**/PresenterActivity.kt", ' && nav.optBoolean("moved", true)', "", "containers android"),
    ("SlideTarget.moved ignored (Kotlin)", "android", "**/PresenterActivity.kt", "if (target.moved) show(target.url)", "show(target.url)", "containers android"),
    ("no wide viewport (Kotlin)", "android", "**/PresenterActivity.kt", "useWideViewPort = true", "useWideViewPort = false", "containers android"),
    ("a user script at document end (Swift)", "ios", "**/PresenterView.swift", "injectionTime: .atDocumentStart", "injectionTime: .atDocumentEnd", "containers ios"),
    ("a main-frame-only user script (Swift)", "ios", "**/PresenterView.swift", "forMainFrameOnly: false", "forMainFrameOnly: true", "containers ios"),
    ("a misnamed native handler (Swift)", "ios", "**/PresenterView.swift", 'name: "nativeCall"', 'name: "nativecall"', "containers ios"),
    ("container navigations allowed (Swift)", "ios", "**/PresenterView.swift", "decisionHandler(.cancel)", "decisionHandler(.allow)", "containers ios"),
    ("a value spliced raw into JavaScript (Swift)", "ios", "**/PresenterView.swift", "\\(Self.jsLiteral(value))", "\\(value)", "containers ios"),
    ("moved: false followed anyway (Swift)", "ios", "**/PresenterView.swift", 'nav?["moved"] as? Bool == false ? nil : ', "", "containers ios"),
    ("SlideTarget.moved ignored (Swift)", "ios", "**/PresenterView.swift", ", target.moved else", " else", "containers ios"),
    ("a README without the vendor section", "android", "README.md", "## Decks made for other vendors", "## Other decks", "containers android"),
    # Remote detailing (ADR 0023).
    ("a renamed remote session method (Kotlin)", "android", "**/RemotePresenting.kt", "s.pointer(", "s.point(", "api android"),
    ("a misnamed call on `session` (the app's RepSession elsewhere) (Kotlin)", "android", "**/RemotePresenting.kt", "val link = session?.joinUrl() ?: return",
     "val link = session?.joinUrl() ?: return\n        session?.relinks()", "api android"),
    ("a wrong remote argument label (Swift)", "ios", "**/RemotePresenting.swift", "waitingRoom: true", "waiting: true", "api ios"),
    ("an unknown RemoteEvent case in a switch (Swift)", "ios", "**/RemotePresenting.swift", "case .attendeeLeft(", "case .attendeeGone(", "api ios"),
    ("an unknown RemoteEvent case in an if case (Swift)", "ios", "**/RemotePresenting.swift", "if case .ended = event { return }",
     "if case .ended = event { return }; if case .over = event { return }", "api ios"),
    ("openRemoteSession on the main thread (Kotlin)", "android", "**/RemotePresenting.kt", "launch(Dispatchers.IO) {\n            val opened", "launch {\n            val opened", "remote android"),
    ("the event loop on the main thread (Swift)", "ios", "**/RemotePresenting.swift", "Thread.detachNewThread {", "DispatchQueue.main.async {", "remote ios"),
    ("an event loop that outlives a replaced session (Kotlin)", "android", "**/RemotePresenting.kt", " || event is RemoteEvent.Replaced) break", ") break", "remote android"),
    ("no share sheet (Kotlin)", "android", "**/RemotePresenting.kt", "Intent.ACTION_SEND", "Intent.ACTION_VIEW", "remote android"),
    ("no QR code (Swift)", "ios", "**/RemotePresenting.swift", "CIFilter.qrCodeGenerator()", "CIFilter.aztecCodeGenerator()", "remote ios"),
    ("a README without the remote section", "ios", "README.md", "## Remote presenting", "## Remote", "remote ios"),
]
# Any change to the code moves its line count, so the README's stated count is not held
# against the other mutations.
README_COUNT = "README.md states the count"


def mutation_applies(old: str | None, text: str) -> bool:
    if old is None:
        return True
    return re.search(old[3:], text) is not None if old.startswith("re:") else old in text


def self_test(root: Path, apis: dict[str, dict[str, LibType]], js_path: Path) -> Results:
    res = Results()
    with tempfile.TemporaryDirectory(prefix="check-shells-") as tmp:
        grown = (f"a shell grown past {MAX_CODE_LINES} code lines", "android", "**/SyncWorker.kt", None, None, "size android")
        for i, (what, shell, glob, old, new, expect) in enumerate([*MUTATIONS, grown]):
            copy = Path(tmp) / str(i)
            shutil.copytree(root / "examples", copy / "examples")
            candidates = sorted((copy / "examples" / f"{shell}-shell").glob(glob))
            target = next((p for p in candidates if mutation_applies(old, p.read_text())), None)
            if target is None:
                res.add(False, f"self: {what} is caught", f"nothing to doctor: {old!r} not in {glob}")
                continue
            text = target.read_text()
            if old is None:
                text += "\nval padding = 0\n" * MAX_CODE_LINES
            elif old.startswith("re:"):
                text = re.sub(old[3:], new, text, count=1)
            else:
                text = text.replace(old, new, 1)
            target.write_text(text)
            got = check(copy, apis, js_path)
            caught = [name for ok, name, _ in got.rows if not ok and (README_COUNT not in name or "README" in expect)]
            ok = bool(caught) and all(name.startswith(expect) for name in caught)
            res.add(ok, f"self: {what} is caught by '{expect}'", f"failing checks: {caught}")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bindings", required=True, type=Path, help="holds kotlin/**/edetail_ffi.kt and swift/edetail_ffi.swift")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root")
    ap.add_argument("--no-self-test", action="store_true", help="skip the doctored-copy checks")
    ap.add_argument("-v", "--verbose", action="store_true", help="print details of passing checks too")
    a = ap.parse_args()
    kt = next(a.bindings.glob("kotlin/**/edetail_ffi.kt"), None)
    sw = next(a.bindings.glob("swift/edetail_ffi.swift"), None)
    if not kt or not sw:
        print(f"check-shells: no generated bindings under {a.bindings} (kotlin/**/edetail_ffi.kt, swift/edetail_ffi.swift)")
        return 2
    apis = {"kotlin": load_kotlin_api(kt), "swift": load_swift_api(sw)}
    js_path = a.root / "crates/edetail-core/js/edetail.js"
    res = check(a.root, apis, js_path)
    if not a.no_self_test:
        res.rows += self_test(a.root, apis, js_path).rows
    for ok, name, detail in res.rows:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"\n       {detail}" if detail and (not ok or a.verbose) else ""))
    passed = len(res.rows) - res.failed
    print(f"{passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
