"""`ttsim run` and `ttlang show`: a user's mistake is one line on stderr and an exit status
(2 for the command line, 1 for the script), never a traceback unless --debug (issue 8)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class _Done:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def _cli(tool, *args, cwd=ROOT, capsys=None):
    """Run the command line in a subprocess, or in-process (much faster) given capsys."""
    if capsys is None:
        return subprocess.run([sys.executable, "-m", f"{tool}.cli", *args], capture_output=True,
                              text=True, cwd=cwd, timeout=120)
    import importlib
    main = importlib.import_module(f"{tool}.cli").main
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as e:
        rc = e.code
    return _Done(rc, capsys.readouterr().err)


def _one_error(p, status, *words):
    assert p.returncode == status, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    for w in words:
        assert w in last, p.stderr
    return last


@pytest.mark.parametrize("tool, cmd", [("ttsim", "run"), ("ttlang", "show")])
def test_a_missing_script_is_a_command_line_error(tool, cmd, tmp_path, capsys):
    _one_error(_cli(tool, cmd, "no_such_script.py", capsys=capsys), 2, f"{tool} {cmd}: error:",
               "no_such_script.py: no such file")
    _one_error(_cli(tool, cmd, str(tmp_path), capsys=capsys), 2, "not a file")


def test_a_missing_script_as_the_installed_command_sees_it():
    _one_error(_cli("ttsim", "run", "no_such_script.py"), 2, "no such file")


@pytest.mark.parametrize("args, words", [
    (["run", "examples/matmul.py", "--lines", "-1"], ["argument --lines: -1 is negative"]),
    (["run", "examples/matmul.py", "--lines", "many"], ["'many' is not a whole number"]),
    (["run", "examples/matmul.py", "--chip", "-2"], ["argument --chip"]),
    (["run", "examples/matmul.py", "--json", "/no/such/dir/r.json"], ["--json", "does not exist"]),
    (["run", "examples/matmul.py", "--trace", "/no/such/dir/t.json"], ["--trace"]),
])
def test_bad_flags_are_one_line_errors_with_status_2(args, words, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    _one_error(_cli("ttsim", *args, capsys=capsys), 2, *words)


def _script(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


BAD_KERNEL = """
import ttsim
dev = ttsim.Device()
p = ttsim.Program(dev)
p.circular_buffer((0, 0), 0, num_pages=2)
p.reader((0, 0), lambda k: k.cb_push_back(0, -1))
dev.run(p)
"""


def test_a_simulator_error_in_the_script_is_its_message(tmp_path, capsys):
    s = _script(tmp_path, "bad_kernel.py", BAD_KERNEL)
    p = _cli("ttsim", "run", s, capsys=capsys)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("ttsim: CBError: push of -1 pages on cb 0")
    assert "bad_kernel.py:6" in p.stderr


@pytest.mark.parametrize("tool, cmd", [("ttsim", "run"), ("ttlang", "show")])
def test_a_bug_in_the_script_names_its_line_and_debug_shows_the_traceback(tool, cmd, tmp_path,
                                                                         capsys):
    s = _script(tmp_path, "oops.py", "x = 1\ny = x / 0\n")
    _one_error(_cli(tool, cmd, s, capsys=capsys), 1, "the script raised ZeroDivisionError: "
               "division by zero", "oops.py:2: y = x / 0", "--debug")
    p = _cli(tool, cmd, s, "--debug", capsys=capsys)
    assert p.returncode == 1 and "Traceback" in p.stderr and "ZeroDivisionError" in p.stderr


def test_ttlang_show_restores_the_session_when_run_in_process(tmp_path):
    from ttlang import cli
    from ttlang.kernel import build_hooks
    s = _script(tmp_path, "oops.py", "raise ValueError('no')\n")
    argv, path, hooks = list(sys.argv), list(sys.path), list(build_hooks)
    assert cli.main(["show", s]) == 1
    assert sys.argv == argv and sys.path == path and build_hooks == hooks
