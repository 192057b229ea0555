"""`tinyopt course build [--fast] [--student] OUT`: the lessons as executed notebooks and a static site.

Each lesson (a jupytext percent-format script in `tutorials/`) becomes a notebook (jupytext), is
executed top to bottom in a fresh kernel (nbclient), as d2l.ai executes every page of its book, and
is rendered to one HTML page (nbconvert) with its plots inline; `index.html` lists the lessons in
teaching order (`tinyopt.course.syllabus`). Every page links to the index and to the lessons before
and after it, and a mention of another lesson (`06_pruning.py`) becomes a link to its page.

The lessons save their figures to files (they also run as plain scripts); for the site, a hidden
first cell makes `Figure.savefig` also display the figure, so every plot appears where it is made.

`--fast` runs the small settings (`TINYOPT_FAST=1`, as the test suite does). `--student` writes the
exercise version instead: each `# BEGIN SOLUTION` block replaced by a stub (`markers.py`), the
notebooks not executed (the student runs them), and `lessons/*.py` to work in and `tinyopt check`.

Needs the optional extra `tinyopt[course]` (jupytext, nbclient, nbconvert, ipykernel).
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tinyopt.course import markers, syllabus

NEEDED = ("jupytext", "nbclient", "nbconvert", "ipykernel")

# Run first in every executed notebook, hidden on the page: show each saved figure inline.
_SHOW_SAVED_FIGURES = """\
import io as _io
import matplotlib as _mpl
_mpl.use("Agg")
import matplotlib.figure as _figure
from IPython.display import Image as _Image, display as _display
_savefig = _figure.Figure.savefig
def _savefig_and_show(self, fname, *args, **kwargs):
    result = _savefig(self, fname, *args, **kwargs)
    if not isinstance(fname, _io.IOBase):
        buffer = _io.BytesIO()
        _savefig(self, buffer, format="png", dpi=kwargs.get("dpi", 80))
        _display(_Image(data=buffer.getvalue(), format="png"))
    return result
_figure.Figure.savefig = _savefig_and_show
"""
HIDDEN = "remove_cell"


class CourseBuildError(RuntimeError):
    """A lesson failed to execute, or the course tools are missing."""


def require_tools() -> None:
    missing = []
    for name in NEEDED:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise CourseBuildError(f"the course build needs {', '.join(missing)}: pip install 'tinyopt[course]' "
                               f"(or pip install {' '.join(missing)})")


def _link_lessons(text: str, stems: set) -> str:
    """Turn `NN_name.py` (optionally `tutorials/`-prefixed, optionally in backticks) into page links."""
    def replace(m):
        stem = m.group(2)
        return f"[`{stem}.py`]({stem}.html)" if stem in stems else m.group(0)
    return re.sub(r"(?<![\[(/])`?(tutorials/)?(\d\d_[a-z0-9_]+)\.py`?(?![\])])", replace, text)


def _navigation(lessons, i) -> str:
    parts = ["[↑ all lessons](index.html)"]
    if i > 0:
        parts.insert(0, f"[← {lessons[i - 1].number} · {lessons[i - 1].title}]({lessons[i - 1].stem}.html)")
    if i + 1 < len(lessons):
        parts.append(f"[{lessons[i + 1].number} · {lessons[i + 1].title} →]({lessons[i + 1].stem}.html)")
    return " · ".join(parts)


def lesson_notebook(source: str, lessons, i, *, student: bool):
    """The notebook of lesson `lessons[i]`: jupytext's conversion, plus navigation and lesson links."""
    import jupytext
    import nbformat

    if student:
        source = markers.student_version(source, lessons[i].stem)
    nb = jupytext.reads(source, fmt="py:percent")
    stems = {x.stem for x in lessons}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _link_lessons(cell.source, stems)
    nav = _navigation(lessons, i)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(nav))
    nb.cells.append(nbformat.v4.new_markdown_cell(nav))
    if not student:
        nb.cells.insert(0, nbformat.v4.new_code_cell(_SHOW_SAVED_FIGURES, metadata={"tags": [HIDDEN]}))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _execute(stem: str, notebook_json: str, workdir: str, fast: bool, timeout: int,
             threads_per_lesson: int | None = None) -> tuple:
    """Execute one notebook in a fresh kernel; returns (the executed notebook as JSON, seconds)."""
    import time

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.reads(notebook_json, as_version=4)
    env_backup = dict(os.environ)
    os.environ["TINYOPT_OUTPUT_DIR"] = str(Path(workdir) / "runs")
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["TINYOPT_LESSON_FILE"] = str(syllabus.find(stem).path)   # a notebook has no __file__
    if threads_per_lesson:   # several lessons at once: one thread each, so BLAS and Numba do not oversubscribe
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[name] = str(threads_per_lesson)
    if fast:
        os.environ["TINYOPT_FAST"] = "1"
    else:
        os.environ.pop("TINYOPT_FAST", None)
    start = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": workdir}})
        client.execute()
    except CellExecutionError as e:
        first = str(e).strip().splitlines()
        raise CourseBuildError(f"lesson {stem} failed while executing: {first[-1] if first else e}") from None
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    return nbformat.writes(nb), time.perf_counter() - start


# MathJax 2 from Debian's libjs-mathjax, copied into the site (only what TeX → CommonHTML needs), so
# that the pages render their formulas offline; without it the formulas stay as TeX source.
MATHJAX_DIRS = (Path("/usr/share/javascript/mathjax"), Path("/usr/share/mathjax"))
_MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "extensions", "jax/input/TeX",
                  "jax/output/CommonHTML", "jax/element", "fonts/HTML-CSS/TeX/woff", "localization/en")
MATHJAX_CONFIG = "?config=TeX-AMS_CHTML-full,Safe"


def copy_mathjax(site: Path):
    """Copy a local MathJax into `site/_static/mathjax`; returns its relative URL, or None."""
    for root in MATHJAX_DIRS:
        if (root / "MathJax.js").is_file() and (root / "config" / "TeX-AMS_CHTML-full.js").is_file():
            target = site / "_static" / "mathjax"
            for part in _MATHJAX_PARTS:
                source = root / part
                if source.is_dir():
                    shutil.copytree(source, target / part, dirs_exist_ok=True)
                elif source.is_file():
                    (target / part).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target / part)
            return "_static/mathjax/MathJax.js" + MATHJAX_CONFIG
    return None


def _render(nb, title: str, mathjax_url) -> str:
    """One static HTML page. The classic template's jQuery, RequireJS and Mermaid (for widgets and
    diagrams the lessons do not use) come from a CDN: they are left out, so a page needs no network."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {HIDDEN}
    config.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(config=config, template_name="classic")
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    if mathjax_url:
        exporter.mathjax_url = mathjax_url
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    for url in (exporter.jquery_url, exporter.require_js_url):
        body = body.replace(f'<script src="{url}"></script>', "")
    body = re.sub(r'<script type="module">\s*import mermaid.*?</script>', "", body, flags=re.S)
    if not mathjax_url:
        body = re.sub(r'<script src="[^"]*mathjax[^"]*">\s*</script>', "", body)
    return body


def _index_page(lessons, *, fast: bool, student: bool) -> str:
    from tinyopt.course import exercises

    rows = []
    for i, x in enumerate(lessons, start=1):
        names = ", ".join(e.name for e in exercises.for_lesson(x.stem)) or "–"
        rows.append(f"<tr><td>{i}</td><td><a href=\"{x.stem}.html\">{x.number} · {html.escape(x.title)}</a></td>"
                    f"<td>{html.escape(x.topic)} (seeds {x.seeds})</td><td>{x.full} / {x.fast}</td>"
                    f"<td>{html.escape(x.checks)}</td><td>{html.escape(names)}</td></tr>")
    mode = ("student version: exercises are stubs; fill them in, then run <code>tinyopt check NN "
            "--student-file lessons/NN_name.py</code>") if student else (
        "executed with the small settings (TINYOPT_FAST=1)" if fast else "executed with the full settings")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tinyopt: the course</title>
<style>body{{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top}}</style>
</head><body>
<h1>tinyopt: neural-network optimization, step by step</h1>
<p>The lessons in teaching order ({mode}). Each ends with checks of what it taught.</p>
<table><tr><th>#</th><th>lesson</th><th>seed topic</th><th>time (full / fast)</th><th>checks</th><th>exercises</th></tr>
{chr(10).join(rows)}
</table>
</body></html>
"""


def build(out, *, fast: bool = False, student: bool = False, only=None, jobs: int = 2, timeout: int = 900,
          log=print) -> list:
    """Build the course into folder `out`; returns the pages written. `only`: lesson numbers/stems."""
    require_tools()
    import nbformat

    lessons = list(syllabus.available())
    if only:
        wanted = {syllabus.find(x).stem for x in only}
        lessons = [x for x in lessons if x.stem in wanted]
    if not lessons:
        raise CourseBuildError("no lessons to build")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for x in lessons:   # check every lesson's markers before anything is written
        markers.find_blocks(x.path.read_text(encoding="utf-8"), str(x.path))
    notebooks = {x.stem: lesson_notebook(x.path.read_text(encoding="utf-8"), lessons, i, student=student)
                 for i, x in enumerate(lessons)}
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        if not student:
            work = staging / "_work"
            work.mkdir()
            with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
                # With several lessons running at once, each gets an equal share of the cores.
                share = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
                futures = {x.stem: pool.submit(_execute, x.stem, nbformat.writes(notebooks[x.stem]), str(work),
                                               fast, timeout, share) for x in lessons}
                for stem, future in futures.items():
                    executed, seconds = future.result()
                    notebooks[stem] = nbformat.reads(executed, as_version=4)
                    log(f"executed {stem} in {seconds:.0f} s")
            shutil.rmtree(work, ignore_errors=True)
        (staging / "notebooks").mkdir()
        if student:
            (staging / "lessons").mkdir()
        pages = []
        mathjax_url = copy_mathjax(staging)
        if mathjax_url is None:
            log("no local MathJax (apt-get install libjs-mathjax): formulas are shown as TeX source")

        for x in lessons:
            nbformat.write(notebooks[x.stem], staging / "notebooks" / f"{x.stem}.ipynb")
            (staging / f"{x.stem}.html").write_text(_render(notebooks[x.stem], x.title, mathjax_url), encoding="utf-8")
            if student:
                text = markers.student_version(x.path.read_text(encoding="utf-8"), x.stem)
                (staging / "lessons" / f"{x.stem}.py").write_text(text, encoding="utf-8")
            pages.append(out / f"{x.stem}.html")
        (staging / "index.html").write_text(_index_page(lessons, fast=fast, student=student), encoding="utf-8")
        # The lessons that save figures: their pages must show them (the browser check reads this).
        plots = [x.stem for x in lessons if re.search(r"savefig\(|\bsave=", x.path.read_text(encoding="utf-8"))]
        (staging / "course.json").write_text(json.dumps({"fast": fast, "student": student,
                                                         "lessons": [x.stem for x in lessons], "plots": plots},
                                                        indent=1))
        # Replace the old site only once the new one is complete.
        if out.exists():
            old = out.with_name(out.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
        return [out / "index.html"] + pages
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
