"""Prints 'N passed, M failed' over every test case in the automake test logs under a
directory: Check suites ("Checks: N, Failures: F, Errors: E"), Python unittest
("Ran N tests" ... "FAILED (failures=F, errors=E)") and scripts that print the plain
"N passed, M failed" line."""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "tests"
passed = failed = 0
for dirpath, _, files in os.walk(root):
    for name in files:
        if not name.endswith(".log"):
            continue
        text = open(os.path.join(dirpath, name), errors="replace").read()
        m = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", text)
        if m:
            n, f, e = map(int, m.groups())
            passed += n - f - e
            failed += f + e
            continue
        m = re.search(r"^(\d+) passed, (\d+) failed$", text, re.M)
        if m:
            passed += int(m.group(1))
            failed += int(m.group(2))
            continue
        m = re.search(r"^Ran (\d+) tests?", text, re.M)
        if m:
            n = int(m.group(1))
            bad = 0
            fm = re.search(r"^FAILED \(([^)]*)\)", text, re.M)
            if fm:
                for k, v in re.findall(r"(failures|errors)=(\d+)", fm.group(1)):
                    bad += int(v)
            passed += n - bad
            failed += bad
        elif name.startswith("test_"):
            failed += 1  # a program that crashed before reporting
print(f"{passed} passed, {failed} failed")
