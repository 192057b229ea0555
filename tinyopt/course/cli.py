"""`tinyopt course build ...` and `tinyopt check ...` (see site.py and autograder.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the fix, exit code 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _returning_exit_code(main):
    """argparse exits on a usage error; the tinyopt CLI returns exit codes instead."""
    def run(argv=None) -> int:
        try:
            return main(argv)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else EXIT_USAGE
    run.__doc__ = main.__doc__
    return run


@_returning_exit_code
def course_main(argv=None) -> int:
    from tinyopt.course import site

    parser = _Parser(prog="tinyopt course", description="Build the course: executed notebooks and a static site.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    b = sub.add_parser("build", help="convert, execute and render every lesson into OUT")
    b.add_argument("out", type=Path, metavar="OUT")
    b.add_argument("--fast", action="store_true", help="the small settings (TINYOPT_FAST=1)")
    b.add_argument("--student", action="store_true", help="the exercise version: solutions replaced by stubs")
    b.add_argument("--only", type=lambda text: [x for x in text.split(",") if x], metavar="LESSONS",
                   help="only these lessons, comma-separated numbers or names (e.g. 01,13)")
    b.add_argument("--jobs", type=int, default=2, help="lessons executed at once (default 2)")
    sub.add_parser("syllabus", help="print the syllabus table (tutorials/README.md holds it)")
    args = parser.parse_args(argv)
    if args.command == "syllabus":
        from tinyopt.course.syllabus import markdown_table

        print(markdown_table())
        return 0
    if args.command != "build":
        parser.print_help()
        return EXIT_USAGE
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        if args.only:
            from tinyopt.course.syllabus import find

            for x in args.only:
                find(x)
        pages = site.build(args.out, fast=args.fast, student=args.student, only=args.only, jobs=args.jobs)
    except KeyError as e:
        print(f"tinyopt course: error: {e.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    except site.CourseBuildError as e:
        print(f"tinyopt course: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(pages)} pages into {args.out} (open {args.out / 'index.html'})")
    return 0


@_returning_exit_code
def check_main(argv=None) -> int:
    from tinyopt.course.autograder import check_lesson

    parser = _Parser(prog="tinyopt check", description="Grade a lesson's exercises against tinyopt's references.")
    parser.add_argument("lesson", metavar="LESSON", help="a lesson number or name, e.g. 01 or 01_optimizers")
    parser.add_argument("--student-file", type=Path, default=None, metavar="F",
                        help="your copy of the lesson (default: the lesson itself, whose solutions pass)")
    args = parser.parse_args(argv)
    if args.student_file is not None and not args.student_file.is_file():
        parser.error(f"--student-file {args.student_file}: no such file (give the .py you worked in)")
    try:
        report = check_lesson(args.lesson, args.student_file)
    except KeyError as e:
        print(f"tinyopt check: error: {e.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    if not report.results:
        print(f"tinyopt check: error: lesson {report.lesson} has no exercises: choose one of "
              f"{', '.join(sorted(_lessons_with_exercises()))}", file=sys.stderr)
        return EXIT_USAGE
    print(report.table())
    return 0 if report.ok else 1


def _lessons_with_exercises():
    from tinyopt.course.exercises import EXERCISES

    return {e.lesson for e in EXERCISES}
