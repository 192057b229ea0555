"""The course as a product: the syllabus, the static site of executed lessons, the exercises and
their autograder. `tinyopt course build [--fast] [--student] OUT`, `tinyopt check LESSON`.

The core library does not import this package; building the site needs `tinyopt[course]`."""
from tinyopt.course.autograder import check_lesson, load_exercises  # noqa: F401
from tinyopt.course.markers import find_blocks, student_version  # noqa: F401
