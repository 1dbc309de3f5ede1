"""The README, CHANGELOG.md and docs/*.md describe what exists.

- every repository path they name (``configs/``, ``tools/``, ``scripts/``, ``docs/``, ``tests/``,
  ``rexnet_mmdet/``; globs match at least one file) exists;
- every ``rexnet_mmdet.x.y`` name and every ``from rexnet_mmdet... import a, b`` resolves to a module of the
  package or a name its source defines (read, not imported);
- every relative link resolves, anchors included (GitHub's heading slugs);
- every ``make TARGET`` named in code is a Makefile target;
- every documented tool under tools/ answers ``--help`` with exit 0, and every option a documented command
  passes to it is one its ``--help`` lists;
- the other way round, every page and section that the code cites (comments, docstrings, messages of the
  package, tools, scripts and configs: ``docs/x.md``, ``docs/x.md#anchor``, ``README "Section"``) exists;
- every channel list a config's comment prints (``# [61, 128, 185]``) is what the ``out_channels(...)``
  call on that line, or on the next, returns.

Each test gathers every problem and reports them all, one ``file:line: ...`` per line.
"""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md', ROOT / 'CHANGELOG.md', *sorted((ROOT / 'docs').glob('*.md'))]
PACKAGE = 'rexnet_mmdet'

#: A repository path: starts at a top-level folder of the project, not inside a URL or another path.
REPO_PATH = re.compile(r'(?<![\w./:-])((?:configs|tools|scripts|docs|tests|rexnet_mmdet)/[\w./*-]*[\w*/])')
DOTTED = re.compile(r'(?<![\w./])(rexnet_mmdet(?:\.[A-Za-z_]\w*)+)')
FROM_IMPORT = re.compile(r'^\s*from\s+(rexnet_mmdet[\w.]*)\s+import\s+([\w\s,]+)', re.M)
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.M | re.S)
INLINE = re.compile(r'`([^`\n]+)`')
TOOL = re.compile(r'(?<![\w./-])(tools/[\w/]+\.py)')
OPTION = re.compile(r'(?<![\w-])(--[A-Za-z][\w-]*)')
MAKE = re.compile(r'(?<![\w-])make ([a-z][\w-]*)')


def _line(text: str, pos: int) -> int:
    return text.count('\n', 0, pos) + 1


def _pages() -> Iterator[Tuple[Path, str]]:
    for page in PAGES:
        if page.exists():
            yield page, page.read_text(encoding='utf-8')


def _where(page: Path, text: str, pos: int) -> str:
    return f'{page.relative_to(ROOT)}:{_line(text, pos)}'


def _code(text: str) -> Iterator[Tuple[int, str]]:
    """(position, code) of every fenced block and inline code span."""
    for m in FENCE.finditer(text):
        yield m.start(2), m.group(2)
    prose = FENCE.sub(lambda m: ' ' * len(m.group(0)), text)
    for m in INLINE.finditer(prose):
        yield m.start(1), m.group(1)


def _commands(text: str) -> Iterator[Tuple[int, str]]:
    """(position, command line) of the shell commands in code: fenced shell blocks (backslash continuations
    joined) and inline spans that run a tool."""
    for m in FENCE.finditer(text):
        if m.group(1) not in ('', 'bash', 'sh', 'shell', 'console'):
            continue
        block, start = m.group(2), m.start(2)
        joined, offset = '', start
        for line in block.splitlines(keepends=True):
            if not joined:
                offset = start
            stripped = line.rstrip('\n')
            if stripped.endswith('\\'):
                joined += stripped[:-1] + ' '
            else:
                yield offset, joined + stripped
                joined = ''
            start += len(line)
        if joined:
            yield offset, joined
    prose = FENCE.sub(lambda m: ' ' * len(m.group(0)), text)
    for m in INLINE.finditer(prose):
        if TOOL.search(m.group(1)):
            yield m.start(1), m.group(1)


def _github_slug(heading: str) -> str:
    text = re.sub(r'`|\*\*|\[|\]\([^)]*\)', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def _anchors(page: Path) -> Set[str]:
    text = FENCE.sub('', page.read_text(encoding='utf-8'))
    return {_github_slug(m.group(1)) for m in re.finditer(r'^#{1,6}\s+(.+?)\s*#*$', text, re.M)}


def test_the_pages_exist():
    missing = [str(p.relative_to(ROOT)) for p in PAGES if not p.exists()]
    assert len(PAGES) > 3 and not missing, f'missing: {missing}'


def test_repository_paths_exist():
    problems = []
    for page, text in _pages():
        for m in REPO_PATH.finditer(text):
            path = m.group(1).rstrip('.')
            if '...' in path:
                continue
            found = list(ROOT.glob(path)) if '*' in path else [ROOT / path] if (ROOT / path).exists() else []
            if not found:
                problems.append(f'{_where(page, text, m.start(1))}: {path} does not exist')
    assert not problems, 'paths named in the docs that do not exist:\n' + '\n'.join(sorted(set(problems)))


def _module_file(dotted: str) -> Path:
    base = ROOT.joinpath(*dotted.split('.'))
    if (base / '__init__.py').exists():
        return base / '__init__.py'
    return base.with_suffix('.py')


def _defines(module: Path, name: str) -> bool:
    """Whether the module's top level binds ``name`` (def, class, assignment or import); read with ``ast``."""
    bound = set()
    for node in ast.parse(module.read_text(encoding='utf-8')).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split('.')[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return name in bound


def _resolve(dotted: str) -> str:
    """'' when ``dotted`` is a module of the package or a name its module defines, else the problem."""
    parts = dotted.split('.')
    for i in range(len(parts), 0, -1):
        module = _module_file('.'.join(parts[:i]))
        if module.exists():
            rest = parts[i:]
            if not rest:
                return ''
            if len(rest) == 1 and _defines(module, rest[0]):
                return ''
            return f'{".".join(parts[:i])} has no {".".join(rest)}'
    return f'no module {dotted}'


def test_package_names_resolve():
    problems = []
    for page, text in _pages():
        for m in DOTTED.finditer(text):
            problem = _resolve(m.group(1))
            if problem:
                problems.append(f'{_where(page, text, m.start(1))}: {m.group(1)}: {problem}')
        for m in FROM_IMPORT.finditer(text):
            names = [n.strip() for n in m.group(2).split('#')[0].split(',') if n.strip()]
            for name in names:
                name = name.split()[0]
                problem = _resolve(f'{m.group(1)}.{name}')
                if problem:
                    problems.append(f'{_where(page, text, m.start(1))}: from {m.group(1)} import {name}: {problem}')
    assert not problems, 'package names in the docs that do not resolve:\n' + '\n'.join(problems)


def test_relative_links_resolve():
    problems = []
    for page, text in _pages():
        for m in LINK.finditer(text):
            target = m.group(1)
            if re.match(r'[a-z]+:', target):
                continue  # http(s), mailto
            path, _, anchor = target.partition('#')
            file = (page.parent / path).resolve() if path else page
            where = _where(page, text, m.start(1))
            if not file.exists():
                problems.append(f'{where}: link to {target}: {path} does not exist')
            elif anchor and file.suffix == '.md' and anchor not in _anchors(file):
                problems.append(f'{where}: link to {target}: {file.relative_to(ROOT)} has no heading #{anchor}')
    assert not problems, 'broken links in the docs:\n' + '\n'.join(problems)


def test_make_targets_exist():
    targets = set(re.findall(r'^([\w-]+):', (ROOT / 'Makefile').read_text(), re.M))
    problems = []
    for page, text in _pages():
        for pos, code in _code(text):
            for m in MAKE.finditer(code):
                if m.group(1) not in targets:
                    problems.append(f'{_where(page, text, pos)}: make {m.group(1)}: no such Makefile target')
    assert not problems, 'make targets named in the docs that the Makefile lacks:\n' + '\n'.join(sorted(set(problems)))


def _documented_tools() -> Dict[str, List[Tuple[str, str]]]:
    """{tool: [(where, option), ...]} for every Python tool the pages name, with the options their commands pass."""
    tools: Dict[str, List[Tuple[str, str]]] = {}
    for page, text in _pages():
        for m in TOOL.finditer(text):
            tools.setdefault(m.group(1), [])
        for pos, command in _commands(text):
            for piece in re.split(r'&&|\|\||;|\|', command.split(' #')[0]):
                found = TOOL.search(piece)
                if found:
                    tools.setdefault(found.group(1), []).extend(
                        (_where(page, text, pos), o) for o in OPTION.findall(piece[found.end():]))
    return tools


# Runs every tool's --help in one interpreter (torch and mmdet are imported once), each as __main__ with its own
# folder first on sys.path as `python TOOL` would have it, and prints {tool: [exit code, output]} as JSON.
_HELP_DRIVER = r'''
import contextlib, io, json, os, runpy, sys
results = {}
for tool in sys.argv[1:]:
    out = io.StringIO()
    sys.argv = [tool, '--help']
    sys.path.insert(0, os.path.dirname(os.path.abspath(tool)))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_path(tool, run_name='__main__')
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # a tool that breaks on import: report it, go on with the others
        code, out = 1, io.StringIO(out.getvalue() + repr(e))
    finally:
        sys.path.pop(0)
    results[tool] = [code, out.getvalue()]
sys.__stdout__.write('\n' + json.dumps(results) + '\n')
'''


@pytest.mark.slow
def test_documented_tools_answer_help_with_the_documented_options():
    tools = _documented_tools()
    present = sorted(t for t in tools if (ROOT / t).exists())
    assert present, 'the docs name no tool'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, '-c', _HELP_DRIVER, *present], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = [f'{t}: not in the repository (named by the docs)' for t in sorted(set(tools) - set(present))]
    for tool in present:
        code, output = results[tool]
        if code != 0:
            problems.append(f'{tool} --help: exit {code}\n    ' + output.strip()[-500:].replace('\n', '\n    '))
            continue
        for where, option in tools[tool]:
            if not re.search(rf'(?<![\w-]){re.escape(option)}(?![\w-])', output):
                problems.append(f'{where}: {tool} {option}: not an option its --help lists')
    assert not problems, 'documented tools and options:\n' + '\n'.join(dict.fromkeys(problems))


#: Source files whose comments, docstrings and messages may cite the docs.
CODE = sorted(p for folder in ('rexnet_mmdet', 'tools', 'scripts', 'configs') for p in (ROOT / folder).rglob('*')
              if p.suffix in ('.py', '.sh') and '__pycache__' not in p.parts)
#: A page cited in code: ``docs/x.md`` or ``README`` (``.md`` optional), an optional ``#anchor``, and an optional
#: section named in quotes (``README "Weights"``, ``README, "Weights"``, ``README section "Weights"``).
CITATION = re.compile(r'(?<![\w/.-])(docs/[\w-]+\.md|README(?:\.md)?)(?:#([\w-]+))?'
                      r'(?:,?\s+(?:section\s+)?\\?"([^"\\\n]+)\\?")?')


def test_docs_cited_in_code_exist():
    assert len(CODE) > 50 and ROOT / 'configs' / 'ssdlite_rexnet_x1.0.py' in CODE
    problems = []
    for source in CODE:
        text = source.read_text(encoding='utf-8')
        for m in CITATION.finditer(text):
            page, anchor, section = m.groups()
            file = ROOT / ('README.md' if page.startswith('README') else page)
            where = f'{source.relative_to(ROOT)}:{_line(text, m.start())}'
            if not file.exists():
                problems.append(f'{where}: {page} does not exist')
                continue
            for wanted in filter(None, (anchor, section and _github_slug(section))):
                if wanted not in _anchors(file):
                    problems.append(f'{where}: {file.relative_to(ROOT)} has no section #{wanted} '
                                    f'({m.group(0)!r})')
    assert not problems, 'pages and sections cited in the code that do not exist:\n' + '\n'.join(problems)


def test_citation_pattern_reads_the_forms_the_code_uses():
    found = [m.groups() for m in CITATION.finditer(
        'see README "ImageNet weights". (docs/weights.md#published-weights) README, "Configs" docs/x.md')]
    assert found == [('README', None, 'ImageNet weights'), ('docs/weights.md', 'published-weights', None),
                     ('README', None, 'Configs'), ('docs/x.md', None, None)]


#: A comment that prints a channel list: ``# [61, 128, 185]`` (anything may follow it).
CHANNEL_COMMENT = re.compile(r'#\s*\[(\d+(?:,\s*\d+)*)\]')


def _out_channels_calls(tree: ast.AST) -> Dict[int, List[int]]:
    """{line: channels} of every ``out_channels(...)`` call with literal arguments, evaluated."""
    from rexnet_mmdet import out_channels

    calls = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'out_channels':
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            calls[node.lineno] = list(out_channels(*args, **kwargs))
    return calls


def test_channel_lists_in_config_comments_are_what_out_channels_returns():
    problems, checked = [], 0
    for config in sorted((ROOT / 'configs').rglob('*.py')):
        text = config.read_text(encoding='utf-8')
        calls = _out_channels_calls(ast.parse(text))
        for number, line in enumerate(text.splitlines(), start=1):
            m = CHANNEL_COMMENT.search(line)
            if not m:
                continue
            printed = [int(c) for c in m.group(1).split(',')]
            where = f'{config.relative_to(ROOT)}:{number}'
            call = calls.get(number, calls.get(number + 1))
            if call is None:
                problems.append(f'{where}: # {printed} has no out_channels(...) call on its line or the next')
            elif call != printed:
                problems.append(f'{where}: the comment says {printed}, out_channels(...) gives {call}')
            checked += 1
    assert checked >= 8
    assert not problems, 'channel lists in config comments:\n' + '\n'.join(problems)
