"""Compile errors that point at the user's kernel line with a caret."""
from __future__ import annotations

import linecache
import sys


class CompileError(Exception):
    """A kernel that cannot be compiled; the message says what to change.

    `locate` attaches the user's source line (file, line, and the text with a caret under
    the statement) once the compiler knows which statement failed.
    """

    def __init__(self, message, line=None):
        self.message, self.line = message, line
        super().__init__(self._render())

    def _render(self):
        if not self.line:
            return self.message
        fname, lineno = self.line
        text = linecache.getline(fname, lineno).rstrip("\n")
        stripped = text.lstrip()
        caret = " " * (len(text) - len(stripped)) + "^" * max(1, len(stripped))
        return f"{fname}:{lineno}: {self.message}\n    {text}\n    {caret}"

    def locate(self, line):
        if self.line is None and line is not None:
            self.line = line
            self.args = (self._render(),)
        return self


def user_line(skip_files):
    """(file, line) of the innermost frame not in `skip_files` (the user's statement)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename in skip_files:
        f = f.f_back
    return (f.f_code.co_filename, f.f_lineno) if f is not None else None
