#!/usr/bin/env python3
"""scripts/check_api_docs.py: every public name in include/goro appears in docs/API.md.

clang parses include/goro/goro.h and include/goro/nats.h and dumps every
declaration in namespace goro (and goro::net, goro::nats); the public names are the classes, structs, enums and
enumerators, aliases, free functions, and the public members of public types
(functions, fields, constants), leaving out namespace detail, operators,
constructors, compiler-generated members and names ending in '_'. A name is
documented when docs/API.md has it inside backticks. Exits 1 with the list
of missing names, so docs/API.md cannot drift from the headers.

  scripts/check_api_docs.py [--list]     (--list: print the public names)
"""
import os
import re
import subprocess
import sys

from goro_paths import ROOT, export_include
DOC = os.path.join(ROOT, "docs", "API.md")
DECL = re.compile(r"^(?P<indent>[ |`-]*)(?P<kind>[A-Za-z]+Decl|AccessSpecDecl) 0x[0-9a-f]+ (?P<rest>.*)$")
NAMED = {"CXXRecordDecl", "ClassTemplateDecl", "EnumDecl", "EnumConstantDecl", "TypeAliasDecl", "TypedefDecl",
         "FunctionDecl", "FunctionTemplateDecl", "CXXMethodDecl", "FieldDecl", "VarDecl"}




def decl_name(kind, rest):
    rest = re.sub(r"\b(parent|prev) 0x[0-9a-f]+", "", rest)
    rest = re.sub(r"<[^<>]*>", "", rest)
    rest = re.sub(r"'[^']*'", "", rest)  # types
    words = [w for w in re.split(r"\s+", rest) if w]
    skip = {"implicit", "used", "referenced", "constexpr", "inline", "static", "class", "struct", "union",
            "definition", "invalid", "explicit", "cinit", "callinit", "listinit", "extern", "mutable", "friend",
            "nrvo", "default", "delete", "trivial", "virtual", "pure", "const", "volatile", "noexcept"}
    for w in words:
        if w in skip or w.startswith("line:") or w.startswith("col:") or w.startswith("/") or ":" in w or w.startswith("0x"):
            continue
        if re.fullmatch(r"[A-Za-z_]\w*", w):
            return w
    return None


def public_names():
    inc = os.path.join(ROOT, "include")
    out = ""
    # goro.h brings in every core header; goro/nats.h (goro::nats, a separate
    # library) is not part of it.
    for header in ("goro.h", "nats.h"):
        cmd = ["clang++", "-std=c++20", "-fsyntax-only", "-DGORO_STATIC_DEFINE", "-I" + inc, "-I" + export_include(),
               "-Xclang", "-ast-dump", "-Xclang", "-ast-dump-filter=goro::", os.path.join(inc, "goro", header)]
        out += subprocess.run(cmd, capture_output=True, text=True).stdout
    names = set()
    for block in out.split("\nDumping ")[1:]:
        title, _, body = block.partition(":\n")
        if "detail" in title or not title.startswith("goro::") or "operator" in title:
            continue
        top = title.split("::")[-1]
        names.add(top)
        access = {}  # indent -> current access at that level
        body_depth = None  # inside a function body (statements and their locals): skipped
        for line in body.splitlines():
            node = re.match(r"^([ |`-]*)(\w+)", line)
            if not node:
                continue
            ndepth = len(node.group(1))
            if body_depth is not None and ndepth > body_depth:
                continue
            body_depth = None
            if node.group(2).endswith(("Stmt", "Expr", "Operator", "Literal")):
                body_depth = ndepth
                continue
            m = DECL.match(line)
            if not m:
                continue
            depth = len(m.group("indent"))
            kind, rest = m.group("kind"), m.group("rest")
            for d in [d for d in access if d > depth]:
                del access[d]
            if kind == "AccessSpecDecl":
                access[depth] = rest.split()[-1]
                continue
            if depth == 0:
                if kind == "CXXRecordDecl":
                    access[2] = "public" if " struct " in " " + rest + " " else "private"
                continue
            if " implicit " in " " + rest + " " or kind not in NAMED:
                if kind in ("CXXRecordDecl",) and " implicit " not in " " + rest + " ":
                    access.setdefault(depth + 2, "public" if " struct " in " " + rest + " " else "private")
                continue
            vis = "public"
            for d in sorted(access):
                if d <= depth:
                    vis = access[d]
            if vis != "public":
                continue
            name = decl_name(kind, rest)
            if not name or name.endswith("_") or name == top or name.startswith("operator") or name.startswith("__"):
                continue
            names.add(name)
            if kind == "CXXRecordDecl":
                access[depth + 2] = "public" if " struct " in " " + rest + " " else "private"
    return names


def main():
    names = public_names()
    if "--list" in sys.argv:
        print("\n".join(sorted(names)))
        return 0
    doc = open(DOC).read() if os.path.exists(DOC) else ""
    fences = re.findall(r"^```[^\n]*\n(.*?)^```", doc, flags=re.S | re.M)  # code blocks count as code
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", doc, flags=re.S | re.M)
    ticked = " ".join(re.findall(r"`([^`]+)`", prose) + fences)
    names -= {"Socket"}  # goro::net::detail::Socket, named in Conn's private section
    names -= {"ConnState", "JsState", "MsgState", "SubState"}  # goro::nats::detail, named as friends
    missing = [n for n in sorted(names) if not re.search(r"(?<![\w])%s(?![\w])" % re.escape(n), ticked)]
    if missing:
        print("docs/API.md does not mention these public names of include/goro (in backticks):")
        print("  " + " ".join(missing))
        return 1
    print("docs/API.md mentions all %d public names of include/goro" % len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
