#!/usr/bin/env python3
"""
Summarise the last `colcon test` run of a workspace from its JUnit XML files and logs.

Prints the failing test cases, each with the lines that say why (pytest's ``E`` lines, at most
``DETAIL_LINES``: a CI log that keeps only its tail still shows the cause), then one pytest
summary line per package, then the total as 'N passed, N failed, N skipped'. Exits 1 if any
test failed or errored, or a tested package has no test results (a package whose tests cannot
even be collected must not look green).
"""

from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ET

SUMMARY_RE = re.compile(
    r'^=+ .*\b(passed|failed|errors?|skipped|no tests ran)\b.* in [0-9.]+s.* =+$')
DETAIL_LINES = 8          # per failing case
DETAIL_WIDTH = 240        # characters per line


def junit_files(ws: Path, pkg: str):
    """Yield the JUnit XML files colcon test left for one package."""
    build = ws / 'build' / pkg
    yield from sorted(p for p in [build / 'pytest.xml'] if p.is_file())
    yield from sorted((build / 'test_results').rglob('*.xml'))


def count(xml: Path):
    """Return (tests, failures, errors, skipped, failing case names) of one JUnit file."""
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        return 0, 0, 1, 0, [f'{xml}: unreadable JUnit XML ({exc})']
    suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
    tests = failures = errors = skipped = 0
    failing = []
    for suite in suites:
        for case in suite.iter('testcase'):
            tests += 1
            name = f"{case.get('classname', '')}.{case.get('name', '')}"
            if case.find('failure') is not None:
                failures += 1
                failing.append(f'FAILED {name}')
                failing += why(case.find('failure'))
            elif case.find('error') is not None:
                errors += 1
                failing.append(f'ERROR  {name}')
                failing += why(case.find('error'))
            elif case.find('skipped') is not None:
                skipped += 1
    return tests, failures, errors, skipped, failing


def why(element) -> list:
    """Return a failure's reason, indented: pytest's ``E`` lines, else its message."""
    text = element.text or ''
    lines = [ln.strip()[1:].strip() for ln in text.splitlines() if ln.strip().startswith('E ')]
    if not lines:
        lines = [ln for ln in (element.get('message') or '').splitlines() if ln.strip()]
    if len(lines) > DETAIL_LINES:        # the first lines name the assertion, the last the cause
        lines = lines[:DETAIL_LINES // 2] + ['...'] + lines[-(DETAIL_LINES // 2):]
    return ['    ' + (ln if len(ln) <= DETAIL_WIDTH else ln[:DETAIL_WIDTH - 3] + '...')
            for ln in lines]


def pytest_summary_line(ws: Path, pkg: str):
    """Return pytest's own closing line for a package, from colcon's log or ament's output file."""
    candidates = [ws / 'log' / 'latest_test' / pkg / 'stdout_stderr.log']
    candidates += sorted((ws / 'build' / pkg / 'ament_cmake_pytest').glob('*.txt'))
    lines = []
    for path in candidates:
        if path.is_file():
            lines += [ln.strip() for ln in path.read_text(errors='replace').splitlines()
                      if SUMMARY_RE.match(ln.strip())]
    return ' | '.join(lines) if lines else '(no pytest summary line found)'


def main(argv):
    ws = Path(argv[1] if len(argv) > 1 else '.').resolve()
    latest = ws / 'log' / 'latest_test'
    if not latest.is_dir():
        print(f'no colcon test log in {ws}/log/latest_test', file=sys.stderr)
        return 1
    packages = sorted(p.name for p in latest.iterdir() if p.is_dir())
    totals = [0, 0, 0, 0]
    failing, rows, bad = [], [], False
    for pkg in packages:
        counts = [0, 0, 0, 0]
        for xml in junit_files(ws, pkg):
            *c, names = count(xml)
            counts = [a + b for a, b in zip(counts, c)]
            failing += [n if n.startswith(' ') else f'{pkg}: {n}' for n in names]
        if counts[0] == 0:
            bad = True
            failing.append(f'{pkg}: ran no test')
        totals = [a + b for a, b in zip(totals, counts)]
        rows.append(f'{pkg}: {pytest_summary_line(ws, pkg)}')
    tests, failures, errors, skipped = totals
    passed = tests - failures - errors - skipped
    print()
    for line in failing:
        print(line)
    print('---- pytest summary per package ----')
    for row in rows:
        print(row)
    print(f'{len(packages)} packages, {tests} tests')
    print(f'{passed} passed, {failures + errors} failed, {skipped} skipped')
    return 1 if (bad or failures or errors) else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
