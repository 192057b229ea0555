"""Exercise markers in a lesson, and the student version that replaces their solutions by stubs.

A lesson marks an exercise the way nbgrader does, with a name after the opening marker:

    def adam_step(theta, g, m, v, t, lr, betas, eps):
        # BEGIN SOLUTION adam_step
        ...the reference solution...
        # END SOLUTION
        return ...                                    # code after the marker stays

`student_version(source)` replaces every marked block by one line at the marker's indentation,

        raise NotImplementedError("exercise: adam_step")

and keeps everything else (the text, the checks), so a student's copy runs up to the first exercise
they have not done and then says which one it is. A block may also be a whole top-level statement
(a class, say): then the stub stands at the top level.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:[ \t]+(?P<name>[A-Za-z_][\w.-]*))?[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")


class MarkerError(ValueError):
    """A BEGIN/END SOLUTION pair that is unbalanced, nested, unnamed or named twice."""


@dataclass(frozen=True)
class Block:
    """One marked exercise: its name and the 1-based line numbers of its two markers."""

    name: str
    indent: str
    begin: int
    end: int


def find_blocks(source: str, where: str = "<lesson>") -> list[Block]:
    """Every marked block in `source`, in order; raises MarkerError naming `where` and the line."""
    blocks, open_at, seen = [], None, set()
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if begin:
            if open_at is not None:
                raise MarkerError(f"{where}:{number}: '# BEGIN SOLUTION' inside the block opened at line {open_at[0]}")
            name = begin.group("name")
            if not name:
                raise MarkerError(f"{where}:{number}: name the exercise: '# BEGIN SOLUTION <name>'")
            if name in seen:
                raise MarkerError(f"{where}:{number}: exercise {name!r} is marked twice")
            seen.add(name)
            open_at = (number, name, begin.group("indent"))
        elif END.match(line):
            if open_at is None:
                raise MarkerError(f"{where}:{number}: '# END SOLUTION' without a '# BEGIN SOLUTION' before it")
            blocks.append(Block(open_at[1], open_at[2], open_at[0], number))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{where}:{open_at[0]}: '# BEGIN SOLUTION {open_at[1]}' is never closed")
    return blocks


def stub_line(block: Block) -> str:
    return f'{block.indent}raise NotImplementedError("exercise: {block.name}")'


def student_version(source: str, where: str = "<lesson>") -> str:
    """`source` with each marked solution replaced by a stub that raises NotImplementedError."""
    blocks = find_blocks(source, where)
    lines = source.splitlines()
    out, i = [], 0
    for block in blocks:
        out.extend(lines[i:block.begin - 1])
        out.append(f"{block.indent}# exercise {block.name}: write your solution here (see the text above)")
        out.append(stub_line(block))
        i = block.end
    out.extend(lines[i:])
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")
