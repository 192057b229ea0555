"""The course as a product (issue 18): exercise markers and the student version, the autograder
(`tinyopt check`: solutions pass, stubs fail with the exercise's name, wrong answers get the hint
of the wrong term), the syllabus (every lesson listed, tutorials/README.md in sync), the new
lessons (13: CNN, 14: hardware) as scripts, and the site build seen through headless Chromium."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TUTORIALS, run_tutorial

from tinyopt import cli
from tinyopt.course import autograder, exercises, markers, syllabus

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- markers

def test_student_version_replaces_each_block_by_a_named_stub_and_keeps_the_rest():
    source = ("x = 1\n"
              "def f(a):\n"
              "    # BEGIN SOLUTION square\n"
              "    b = a * a\n"
              "    # END SOLUTION\n"
              "    return b\n"
              "assert f(3) == 9\n")
    student = markers.student_version(source)
    assert "a * a" not in student
    assert 'raise NotImplementedError("exercise: square")' in student
    assert student.startswith("x = 1\n") and student.endswith("    return b\nassert f(3) == 9\n")
    namespace = {}
    exec(compile(student.replace("assert f(3) == 9\n", ""), "<student>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="exercise: square"):
        namespace["f"](3)


@pytest.mark.parametrize("source, message", [
    ("# BEGIN SOLUTION a\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without a '# BEGIN SOLUTION'"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "name the exercise"),
    ("# BEGIN SOLUTION a\n# BEGIN SOLUTION b\n# END SOLUTION\n", "inside the block"),
    ("# BEGIN SOLUTION a\n# END SOLUTION\n# BEGIN SOLUTION a\n# END SOLUTION\n", "marked twice"),
])
def test_bad_markers_are_errors_naming_the_line(source, message):
    with pytest.raises(markers.MarkerError, match=message) as e:
        markers.find_blocks(source, "lesson.py")
    assert "lesson.py:" in str(e.value)


# ----------------------------------------------------------------------------- exercises <-> lessons

def test_every_marked_block_has_a_check_and_every_check_a_block():
    for lesson in syllabus.available():
        names = {b.name for b in markers.find_blocks(lesson.path.read_text(), str(lesson.path))}
        registered = {e.name for e in exercises.for_lesson(lesson.stem)}
        assert names == registered, lesson.stem


def _lessons_with_exercises():
    return sorted({e.lesson for e in exercises.EXERCISES if syllabus.find(e.lesson).path.is_file()})


@pytest.mark.parametrize("stem", _lessons_with_exercises())
def test_solutions_pass_and_stubs_fail_with_the_exercise_name(stem, tmp_path):
    lesson = syllabus.find(stem)
    report = autograder.check_lesson(stem)
    assert report.ok, report.table()
    student = tmp_path / f"{stem}.py"
    student.write_text(markers.student_version(lesson.path.read_text(), stem))
    report = autograder.check_lesson(stem, student)
    assert [r.ok for r in report.results] == [False] * len(report.results)
    for result in report.results:
        assert f"exercise: {result.exercise}" in result.detail, result


def _with_solution(stem, name, new_body, tmp_path):
    """The lesson with exercise `name`'s solution replaced by `new_body` (a student's attempt)."""
    source = syllabus.find(stem).path.read_text()
    block = next(b for b in markers.find_blocks(source) if b.name == name)
    lines = source.splitlines()
    body = [block.indent + line for line in new_body.strip("\n").splitlines()]
    lines[block.begin:block.end - 1] = body
    path = tmp_path / f"{stem}_attempt.py"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("stem, name, attempt, term", [
    ("01_optimizers", "adam_update", """
beta1, beta2 = betas
m = beta1 * m + (1 - beta1) * g
v = beta2 * v + (1 - beta2) * g * g
theta = theta - lr * (m / (1 - beta1**t)) / np.sqrt(v / (1 - beta2**t) + eps)
""", "ε outside the root"),
    ("01_optimizers", "adam_update", """
beta1, beta2 = betas
m = beta1 * m + (1 - beta1) * g
v = beta2 * v + (1 - beta2) * m * m
theta = theta - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
""", "the square of g"),
    ("01_optimizers", "momentum_update", """
b = momentum * (np.zeros_like(g) if b is None else b) + (1 - momentum) * g
theta = theta - lr * b
""", "b_1 = g_1"),
    ("02_schedules", "cosine_lr", "return eta_min + (eta0 - eta_min) * np.cos(np.pi * t / T_max)", "(1 + cos"),
    ("13_cnn", "conv2d_backward", """
k = w.shape[2]
dx = np.zeros_like(x)
dw = np.zeros_like(w)
db = grad_out.sum(axis=(0, 2, 3))
""", "∂L/∂x"),
    ("05_quantization", "affine_qparams", """
scale = np.float32((x_max - x_min) / (qmax - qmin))
zero_point = int(np.clip(qmin - np.rint(x_min / scale), qmin, qmax))
""", "contain 0"),
])
def test_a_wrong_answer_fails_with_the_first_wrong_value_and_the_terms_hint(stem, name, attempt, term, tmp_path):
    report = autograder.check_lesson(stem, _with_solution(stem, name, attempt, tmp_path))
    result = next(r for r in report.results if r.exercise == name)
    assert not result.ok, result
    assert "expected" in result.detail, result.detail
    if term is not None:
        assert term in result.hint, result.hint
    others = [r for r in report.results if r.exercise != name]
    assert all(r.ok for r in others), report.table()


def test_a_wrong_optimizer_class_is_reported_at_the_differing_term(tmp_path):
    attempt = syllabus.find(11).path.read_text().replace(
        "lr_eff = lr / (np.sqrt(v_hat) + eps)", "lr_eff = lr / np.sqrt(v_hat + eps)", 1)
    path = tmp_path / "attempt.py"
    path.write_text(attempt)
    report = autograder.check_lesson("11", path)
    result = report.results[0]
    assert result.exercise == "my_adam" and not result.ok
    assert "lr_eff" in result.hint or "γ_eff" in result.hint, result.hint


def test_a_student_file_that_does_not_parse_fails_every_exercise_with_the_syntax_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(syllabus.find("02").path.read_text().replace("def step_lr(", "def step_lr(((", 1))
    report = autograder.check_lesson("02", path)
    assert not report.ok and all("SyntaxError" in r.detail for r in report.results)


# ----------------------------------------------------------------------------- CLI

def test_check_cli_exit_codes(tmp_path, capsys):
    assert cli.main(["check", "02"]) == 0
    assert "2/2 exercises pass" in capsys.readouterr().out
    student = tmp_path / "s.py"
    student.write_text(markers.student_version(syllabus.find("02").path.read_text()))
    assert cli.main(["check", "02", "--student-file", str(student)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "exercise: cosine_lr" in out
    for argv, fix in ((["check", "99"], "choose one of"),
                      (["check", "02", "--student-file", str(tmp_path / "missing.py")], "no such file"),
                      (["course", "build", "--fast", "--only", "99", str(tmp_path / "site")], "choose one of"),
                      (["course", "build", "--jobs", "0", str(tmp_path / "site")], "--jobs")):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and fix in err, err
    assert not (tmp_path / "site").exists()


# ----------------------------------------------------------------------------- syllabus

def test_every_lesson_is_in_the_syllabus_and_the_readme_table_is_current():
    stems = {p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.py")}
    assert stems <= {x.stem for x in syllabus.LESSONS}, stems - {x.stem for x in syllabus.LESSONS}
    readme = (TUTORIALS / "README.md").read_text()
    assert syllabus.markdown_table() in readme, "run `tinyopt course syllabus` and paste the table into tutorials/README.md"
    for lesson in syllabus.LESSONS:   # prerequisites come earlier in the teaching order
        for before in lesson.prerequisites:
            assert syllabus.LESSONS.index(syllabus.find(before)) < syllabus.LESSONS.index(lesson), (before, lesson.stem)


# ----------------------------------------------------------------------------- the new lessons

def test_cnn_lesson_runs(tmp_path):
    result = run_tutorial("13_cnn.py", tmp_path)
    assert "all checks passed" in result.stdout
    assert "fc1 inputs 8192" in result.stdout


def test_hardware_lesson_runs(tmp_path):
    result = run_tutorial("14_hardware.py", tmp_path)
    assert "all checks passed" in result.stdout
    assert "exact (equal to int64)" in result.stdout


# ----------------------------------------------------------------------------- the site

course_tools = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("jupytext", "nbclient", "nbconvert", "ipykernel")),
    reason="the course tools are not installed (pip install 'tinyopt[course]')")


@course_tools
def test_site_build_and_student_version(tmp_path):
    out = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "tinyopt", "course", "build", "--fast", "--only", "02,14", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    pages = {p.name for p in out.glob("*.html")}
    assert pages == {"index.html", "02_schedules.html", "14_hardware.html"}
    page = (out / "14_hardware.html").read_text()
    assert page.count("data:image/png;base64") >= 1                      # the roofline plot, inline
    assert "_SHOW_SAVED_FIGURES" not in page and "_savefig_and_show" not in page   # the hidden cell is hidden
    assert 'href="02_schedules.html"' in page and 'href="index.html"' in page
    assert "cdnjs" not in page                                           # no network needed
    assert (out / "notebooks" / "14_hardware.ipynb").is_file()

    student = tmp_path / "student"
    run = subprocess.run([sys.executable, "-m", "tinyopt", "course", "build", "--student", "--only", "02,14",
                          str(student)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    lesson = (student / "lessons" / "14_hardware.py").read_text()
    assert 'raise NotImplementedError("exercise: roofline")' in lesson and "bandwidth * intensity)" not in lesson
    assert cli.main(["check", "14", "--student-file", str(student / "lessons" / "14_hardware.py")]) == 1

    from tinyopt.course import browser
    try:
        browser.find_browser()
        __import__("selenium")
    except (FileNotFoundError, ImportError) as e:
        pytest.skip(f"no headless browser: {e}")
    problems = browser.check_site(out, must_have_images={"14_hardware", "02_schedules"})
    assert problems == {name: [] for name in pages}, problems
