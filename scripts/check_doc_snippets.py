#!/usr/bin/env python3
"""scripts/check_doc_snippets.py: every ```cpp block of README.md and
docs/FROM_GO.md compiles (each block is a whole translation unit), so the
docs a user copies from cannot rot. Compiles with $CXX (default g++),
-fsyntax-only, against include/ and a configured build's export header.
Exits 1 and shows the compiler's errors for a block that fails.
"""
import os
import re
import subprocess
import sys
import tempfile

from goro_paths import ROOT, export_include
DOCS = ["README.md", os.path.join("docs", "FROM_GO.md")]




def main():
    cxx = os.environ.get("CXX", "g++")
    inc = [os.path.join(ROOT, "include"), export_include()]
    failed = 0
    total = 0
    for doc in DOCS:
        text = open(os.path.join(ROOT, doc)).read()
        for i, m in enumerate(re.finditer(r"^```cpp\n(.*?)^```", text, flags=re.S | re.M)):
            total += 1
            line = text[:m.start()].count("\n") + 1
            with tempfile.NamedTemporaryFile("w", suffix=".cc", delete=False) as f:
                f.write(m.group(1))
                path = f.name
            cmd = [cxx, "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-DGORO_STATIC_DEFINE"]
            cmd += ["-I" + d for d in inc] + [path]
            p = subprocess.run(cmd, capture_output=True, text=True)
            os.unlink(path)
            if p.returncode != 0 or "warning:" in p.stderr:
                failed += 1
                print("%s:%d: the code block does not compile cleanly:" % (doc, line))
                print(p.stderr[:4000])
    print("%d of %d code blocks in %s compile" % (total - failed, total, ", ".join(DOCS)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
