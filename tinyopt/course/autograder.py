"""`tinyopt check`: run a student's exercise functions against tinyopt's references.

The student works in the lesson file (or its student version, `tinyopt course build --student`),
filling in the blocks between `# BEGIN SOLUTION <name>` and `# END SOLUTION`. The checker does not
run the lesson (that trains networks); it loads only what the exercises need:

1. every top-level `import` of the file, every `def` and `class` (defining them is cheap), and
   top-level assignments of plain values (`STEPS = 30`), in file order;
2. the statements that hold each exercise's block.

Then each exercise's check (`tinyopt/course/exercises.py`) calls the student's function on inputs
with a known answer (tinyopt's own implementation, itself verified against torch and central
differences) and reports pass/fail, the first wrong value, and a hint naming the formula term.
An exercise still holding its stub fails with `NotImplementedError("exercise: <name>")`.
"""
from __future__ import annotations

import ast
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tinyopt.course.markers import find_blocks

# Calls allowed in a top-level assignment the checker runs (anything else may be expensive).
_CHEAP_CALLS = {"bool", "int", "float", "str", "tuple", "list", "dict", "Path", "get", "dtype", "float64",
                "float32", "array", "sqrt", "range", "set", "frozenset", "mkdir"}


@dataclass
class Result:
    """The outcome of one exercise's check."""

    exercise: str
    ok: bool
    detail: str = ""            # what was compared, or the first wrong value
    hint: str = ""              # the formula term to look at, when the check can tell
    checks: int = 0             # how many comparisons passed before the first failure (or in all)

    def row(self) -> tuple:
        return (self.exercise, "pass" if self.ok else "FAIL", self.detail, self.hint)


@dataclass
class Report:
    lesson: str
    file: Path
    results: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def table(self) -> str:
        rows = [("exercise", "result", "details", "hint")] + [r.row() for r in self.results]
        widths = [min(max(len(str(row[i])) for row in rows), 70) for i in range(3)]
        lines = []
        for k, row in enumerate(rows):
            cells = [str(row[i])[:70].ljust(widths[i]) for i in range(3)] + [str(row[3])]
            lines.append("  ".join(cells).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths) + "  ----")
        passed = sum(r.ok for r in self.results)
        lines.append(f"{self.lesson}: {passed}/{len(self.results)} exercises pass ({self.file})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _cheap_assignment(node: ast.stmt) -> bool:
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        return False
    for sub in ast.walk(node.value):
        if isinstance(sub, ast.Call):
            f = sub.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name not in _CHEAP_CALLS:
                return False
        if isinstance(sub, (ast.Lambda, ast.ListComp, ast.DictComp, ast.GeneratorExp, ast.SetComp)):
            return False
    return True


def load_exercises(path: Path, names=None) -> tuple[dict, dict]:
    """Run the parts of lesson `path` that define its exercises; returns (namespace, errors).

    `errors[name]` holds the exception raised while defining exercise `name` (a stub's
    NotImplementedError, a student's SyntaxError...), so its check can report it."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    blocks = find_blocks(source, str(path))
    errors: dict = {}
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        return {}, {b.name: e for b in blocks}
    owner = {}   # index of a top-level statement -> the exercises inside it
    for i, node in enumerate(tree.body):
        for b in blocks:
            if node.lineno <= b.end and (node.end_lineno or node.lineno) >= b.begin:
                owner.setdefault(i, []).append(b.name)
    namespace = {"__name__": f"tinyopt_check_{path.stem}", "__file__": str(path)}
    for i, node in enumerate(tree.body):
        exercise_names = owner.get(i)
        cheap = isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)) or _cheap_assignment(node)
        if not exercise_names and not cheap:
            continue
        code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
        try:
            exec(code, namespace)  # noqa: S102 - the student's own lesson file, run on purpose
        except Exception as e:  # noqa: BLE001 - reported per exercise
            for name in exercise_names or ():
                errors.setdefault(name, e)
    return namespace, errors


def _describe(e: BaseException) -> str:
    if isinstance(e, NotImplementedError):
        return str(e) or "not implemented"
    frames = traceback.extract_tb(e.__traceback__)
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{where}"


def check_lesson(lesson, student_file=None) -> Report:
    """Check every exercise of `lesson` (a number, a stem or a path) in `student_file` (default: the
    lesson itself, whose solutions must all pass)."""
    from tinyopt.course import exercises, syllabus

    info = syllabus.find(lesson)
    path = Path(student_file) if student_file is not None else info.path
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    namespace, errors = load_exercises(path)
    report = Report(info.stem, path)
    for ex in exercises.for_lesson(info.stem):
        if ex.name in errors:
            report.results.append(Result(ex.name, False, _describe(errors[ex.name]), ex.hint))
            continue
        if ex.name not in namespace and ex.function not in namespace:
            report.results.append(Result(ex.name, False, f"{ex.function} is not defined in {path.name}", ex.hint))
            continue
        fn = namespace.get(ex.function)
        try:
            result = ex.check(fn)
        except Exception as e:  # noqa: BLE001 - a student's function may raise anything
            result = Result(ex.name, False, _describe(e), ex.hint)
        result.exercise = ex.name
        report.results.append(result)
    return report
