"""The precompiled header for Jittor's CPU kernels (pipeline/jt_pch.py): what it holds, when it
is used, that a failed build leaves Jittor's flags alone, and (slow) that kernels compiled with
it are the same machine code as without it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import jt_pch

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ('-Wall -std=c++14 -fPIC -march=native -lstdc++ -ldl -shared -I"/x/src" -L"/x/lib" '
         '-l"jittor_core.so" -l:"jit_utils.so" -fopenmp -Ofast')


def _fake_jt(tmp_path, flags=FLAGS, cuda=0):
    return SimpleNamespace(__version__="1.3.11", flags=SimpleNamespace(
        cc_path=shutil.which("g++") or "/usr/bin/g++", cc_flags=flags, cache_path=str(tmp_path),
        use_cuda=cuda, python_path="/usr/bin/python3"))


def test_header_defines_jit_before_the_kernel_headers():
    text = jt_pch.header_text("abc")
    lines = [ln for ln in text.splitlines() if not ln.startswith("//")]
    assert lines[0] == "#define JIT 1"  # what every kernel defines before its includes
    assert [ln.split(" ", 1)[1] for ln in lines[1:]] == list(jt_pch.KERNEL_INCLUDES)
    assert "JIT_cpu" not in text  # not defined by every kernel: left to the kernel


def test_header_is_compiled_with_the_kernels_flags_less_the_linkers():
    assert jt_pch.compile_flags(FLAGS) == ["-Wall", "-std=c++14", "-fPIC", "-march=native",
                                           "-I/x/src", "-fopenmp", "-Ofast"]
    key = jt_pch.pch_key("/usr/bin/g++", FLAGS, "1.3.11")
    assert key != jt_pch.pch_key("/usr/bin/g++", FLAGS + " -O2", "1.3.11")
    assert key != jt_pch.pch_key("/usr/bin/g++", FLAGS, "1.3.12")
    assert key != jt_pch.pch_key("/usr/bin/clang++", FLAGS, "1.3.11")


def test_off_for_cuda_for_other_compilers_and_on_request(tmp_path, monkeypatch):
    jt = _fake_jt(tmp_path, cuda=1)
    assert jt_pch.use_kernel_pch(jt) is None and jt.flags.cc_flags == FLAGS
    jt = _fake_jt(tmp_path)
    jt.flags.cc_path = "/usr/bin/clang++"
    assert jt_pch.use_kernel_pch(jt) is None and jt.flags.cc_path == "/usr/bin/clang++"
    monkeypatch.setenv("LANDSCAPE_KERNEL_PCH", "0")
    jt = _fake_jt(tmp_path)
    assert jt_pch.use_kernel_pch(jt) is None and jt.flags.cc_flags == FLAGS
    assert not (tmp_path / jt_pch.PCH_DIR).exists()


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_a_header_that_does_not_compile_leaves_the_flags_alone(tmp_path):
    """Without Jittor's include folder on the flags, var.h is not found: the kernels compile as
    before, the log says why, and no temp file is left."""
    jt, said = _fake_jt(tmp_path, flags="-std=c++14 -fPIC"), []
    cc = jt.flags.cc_path
    assert jt_pch.use_kernel_pch(jt, said.append) is None
    assert jt.flags.cc_flags == "-std=c++14 -fPIC" and jt.flags.cc_path == cc
    assert len(said) == 1 and "without a precompiled header" in said[0] and "var.h" in said[0]
    left = sorted(p.name for p in (tmp_path / jt_pch.PCH_DIR).iterdir())
    assert not any(n.startswith(".") for n in left) and not any(n.endswith(".gch") for n in left)


def test_setup_jittor_on_cpu_compiles_kernels_with_the_header():
    code = ("from pipeline.jt_env import setup_jittor; jt = setup_jittor('cpu');"
            "import numpy as np, re; wrapper = open(jt.flags.cc_path).read();"
            "assert jt.flags.python_path.endswith('-tuner'), jt.flags.python_path;"
            "print(re.search('-include \"([^\"]+)\"', wrapper).group(1));"
            "print(float((jt.array(np.arange(6, dtype='float32')) * 0.5).sum()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    header_line, value = out.stdout.strip().splitlines()[-2:]
    header = Path(header_line)
    assert header.parent.name == jt_pch.PCH_DIR and header.is_file()
    assert Path(str(header) + ".gch").is_file()
    assert float(value) == 7.5


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("objcopy") is None, reason="no objcopy")
def test_kernels_compiled_with_the_header_are_the_same_code():
    """A small graph (convolution, element-wise ops, reductions, reindex, argsort, gradients) in
    fresh kernel folders, without and with the header, and with the header and the compile
    driver: every kernel library's .text is byte-identical (the oneDNN ones are compiled
    without the header) and the outputs are equal."""
    from tools.kernel_pch_check import check

    r = check("tiny")
    assert r["kernels_without"] == r["kernels_with"] == r["compared"] >= 10, r
    assert r["identical"] == r["compared"] and not r["differ"], r
    assert r["outputs_equal"], r
    # the compile driver (in place of asm_tuner) too
    assert r["kernels_direct"] == r["compared_direct"] == r["compared"], r
    assert r["identical_direct"] == r["compared_direct"] and not r["differ_direct"], r
    assert r["outputs_equal_direct"], r


def test_the_check_refuses_a_folder_of_other_files(tmp_path, capsys):
    """`tools.kernel_pch_check --keep DIR` writes only into a new or empty folder."""
    from tools.kernel_pch_check import main

    (tmp_path / "theirs.txt").write_text("not ours")
    assert main(["--setting", "tiny", "--keep", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and str(tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.txt"]
    assert (tmp_path / "theirs.txt").read_text() == "not ours"


KERNEL = """#include <cstdio>
struct Announce { Announce() { std::printf("%s\\n", __FILE__); } } announce;
extern "C" int run(int n) { std::vector<int> v(n, 2); int t = 0; for (int x : v) t += x; return t; }
"""


def _asm(wrapper: Path, source: Path) -> subprocess.CompletedProcess:
    """What Jittor's asm_tuner runs first for a kernel: its source to assembly, with -g."""
    return subprocess.run([str(wrapper), str(source), "-O2", "-fPIC", "-S", "-g", "-o",
                           str(source.with_suffix(".post.s"))], capture_output=True, text=True)


def _sections(asm: Path, tmp: Path) -> tuple[bytes, bytes]:
    """(.text, .rodata) of the assembly, assembled and linked."""
    lib = tmp / (asm.name + ".so")
    subprocess.run(["g++", "-x", "assembler", str(asm), "-shared", "-o", str(lib)], check=True)
    from tools.kernel_pch_check import text_section

    ro = tmp / (asm.name + ".ro")
    subprocess.run(["objcopy", "-O", "binary", "--only-section=.rodata", str(lib), str(ro)], check=True)
    return text_section(lib, tmp), ro.read_bytes()


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("objcopy") is None
                    or shutil.which("sha256sum") is None, reason="no g++, objcopy or sha256sum")
def test_a_kernel_of_the_same_source_reuses_the_assembly_with_its_own_name(tmp_path):
    """Jittor names some identical kernels differently: the second one's assembly is the first
    one's with the name changed, and assembles to the code and data (its own __FILE__, its own
    initialiser) that compiling it gives. Another source, flags or folder compiles."""
    header = tmp_path / "kernels_k.h"
    header.write_text("#include <vector>\n")
    wrapper = jt_pch.write_wrapper(shutil.which("g++"), header)
    jit = tmp_path / "jit"
    jit.mkdir()
    first, second = jit / "aaa_hash_1_op.cc", jit / "bbbbbb_hash_22_op.cc"
    for f in (first, second):
        f.write_text(KERNEL)
    assert _asm(wrapper, first).returncode == 0 and _asm(wrapper, second).returncode == 0
    log = tmp_path / "kernels_k.asm" / "reused.log"
    assert log.read_text().splitlines() == [str(second)]
    reused = second.with_suffix(".post.s").read_text()
    assert "bbbbbb_hash_22_op" in reused and "aaa_hash_1_op" not in reused
    # the same kernel compiled, not reused
    fresh = jit / "fresh_op.post.s"
    subprocess.run(["g++", "-include", str(header), str(second), "-O2", "-fPIC", "-S", "-g", "-o", str(fresh)],
                   check=True)
    assert _sections(second.with_suffix(".post.s"), tmp_path) == _sections(fresh, tmp_path)
    # another source text, other flags, another folder: compiled (the log does not grow)
    third = jit / "ccc_hash_3_op.cc"
    third.write_text(KERNEL.replace("2)", "3)"))
    assert _asm(wrapper, third).returncode == 0
    assert subprocess.run([str(wrapper), str(first), "-O1", "-fPIC", "-S", "-g", "-o",
                           str(jit / "ddd_op.post.s")]).returncode == 0
    other = tmp_path / "jit2"
    other.mkdir()
    (other / "eee_hash_5_op.cc").write_text(KERNEL)
    assert _asm(wrapper, other / "eee_hash_5_op.cc").returncode == 0
    assert log.read_text().splitlines() == [str(second)]
    # a compile error is the compiler's, and nothing is recorded for it
    bad = jit / "bad_hash_9_op.cc"
    bad.write_text("this is not C++\n")
    out = _asm(wrapper, bad)
    assert out.returncode != 0 and "error" in out.stderr
    assert not list((tmp_path / "kernels_k.asm").glob("*.bad_hash_9_op"))


# ---------------------------------------------------------------- the kernels' compile driver
LINK_FLAGS = ["-fPIC", "-O2", "-lstdc++", "-ldl", "-shared", "-L/nonexistent", "-Wl,-rpath,/x"]


def _recorder(tmp_path: Path, name: str, then: str = "") -> Path:
    """A script that appends its arguments (one per line, then a ---) to <name>.log, and then
    runs `then` with them (nothing when empty)."""
    log = tmp_path / f"{name}.log"
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" --- >> "{log}"\n'
                      + (f'exec {then} "$@"\n' if then else "exit 0\n"))
    script.chmod(0o755)
    return script


def _calls(tmp_path: Path, name: str) -> list[list[str]]:
    log = tmp_path / f"{name}.log"
    if not log.exists():
        return []
    return [c.strip("\n").split("\n") for c in log.read_text().split("---\n") if c.strip()]


def _tuner_setup(tmp_path):
    python = _recorder(tmp_path, "python")
    cc = _recorder(tmp_path, "cc", then=shutil.which("g++"))
    header = tmp_path / "kernels_k.h"
    header.write_text("#include <vector>\n")
    tuner = jt_pch.write_tuner(str(python), header)
    jit = tmp_path / "jit"
    jit.mkdir()
    return tuner, cc, jit


def _tune(tuner: Path, cc: Path, src: Path, *extra: str) -> subprocess.CompletedProcess:
    """What Jittor runs for a CPU kernel: `PYTHON asm_tuner.py --cc_path=CC SRC FLAGS -o X.so`."""
    return subprocess.run([str(tuner), "/j/utils/asm_tuner.py", f"--cc_path={cc}", str(src),
                           *LINK_FLAGS, *extra, "-o", str(src.with_suffix(".so"))],
                          capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("objcopy") is None,
                    reason="no g++ or objcopy")
def test_the_driver_compiles_a_plain_kernel_as_asm_tuner_does_less_debug_information(tmp_path):
    """A kernel with no assembly rewrite: two compiles, no Python. The first is asm_tuner's
    (the flags less the linker's, to X_op.post.s) without -g; the second links that assembly
    with the kernel's own flags. The code is the code of asm_tuner's route (with -g)."""
    tuner, cc, jit = _tuner_setup(tmp_path)
    src = jit / "aaa_hash_1_op.cc"
    src.write_text(KERNEL.replace("<cstdio>", "<cstdio>\n#include <vector>"))
    out = _tune(tuner, cc, src)
    assert out.returncode == 0, out.stderr
    assert _calls(tmp_path, "python") == []
    asm_call, link_call = _calls(tmp_path, "cc")
    assert asm_call[0] == str(src) and asm_call[-3:] == ["-S", "-o", str(jit / "aaa_hash_1_op.post.s")]
    assert asm_call[1:-3] == ["-fPIC", "-O2"]  # no -l, -L, -Wl, -shared, -o X.so, -g
    assert link_call == [str(jit / "aaa_hash_1_op.post.s"), *LINK_FLAGS, "-o", str(src.with_suffix(".so"))]
    assert ".loc" not in (jit / "aaa_hash_1_op.post.s").read_text()
    # asm_tuner's route: to assembly with -g, then the same link
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["g++", str(src), "-fPIC", "-O2", "-S", "-g", "-o", str(ref / "k.s")], check=True)
    subprocess.run(["g++", str(ref / "k.s"), *LINK_FLAGS[:5], "-o", str(ref / "k.so")], check=True)
    from tools.kernel_pch_check import text_section

    assert text_section(src.with_suffix(".so"), tmp_path) == text_section(ref / "k.so", tmp_path)


def test_the_driver_leaves_rewrites_and_other_commands_to_asm_tuner(tmp_path):
    """A kernel whose source asks for an assembly rewrite (`//@begin replace`), a command that
    is not a kernel's compile, or one of another form: Python runs it, unchanged."""
    tuner, cc, jit = _tuner_setup(tmp_path)
    movnt = jit / "bbb_hash_2_op.cc"
    movnt.write_text('//@begin replace "vmova(.*)" "vmovnt\\g<1>"\nint x;\n//@end\n')
    assert _tune(tuner, cc, movnt).returncode == 0
    other = [str(tuner), "/j/utils/dlink_compiler.py", "a", "b"]
    assert subprocess.run(other).returncode == 0
    not_op = jit / "notakernel.cc"
    not_op.write_text("int y;\n")
    assert _tune(tuner, cc, not_op).returncode == 0
    plain = jit / "ccc_hash_3_op.cc"
    plain.write_text("int z;\n")
    odd = [str(tuner), "/j/utils/asm_tuner.py", f"--cc_path={cc}", str(plain), "-S", "-o",
           str(jit / "ccc_hash_3_op.s")]  # asm_tuner's .cc -> .s form
    assert subprocess.run(odd).returncode == 0
    assert _calls(tmp_path, "cc") == []
    calls = _calls(tmp_path, "python")
    assert calls[0] == ["/j/utils/asm_tuner.py", f"--cc_path={cc}", str(movnt), *LINK_FLAGS, "-o",
                        str(movnt.with_suffix(".so"))]
    assert calls[1] == other[1:]
    assert calls[2][2] == str(not_op) and calls[3] == odd[1:]


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_a_kernel_that_does_not_compile_fails_with_the_compilers_message(tmp_path):
    tuner, cc, jit = _tuner_setup(tmp_path)
    bad = jit / "bad_hash_9_op.cc"
    bad.write_text("this is not C++\n")
    out = _tune(tuner, cc, bad)
    assert out.returncode != 0 and "error" in out.stderr
    assert len(_calls(tmp_path, "cc")) == 1 and not bad.with_suffix(".so").exists()


def test_the_driver_is_used_with_the_header_unless_turned_off(tmp_path, monkeypatch):
    """use_kernel_pch points Jittor's python_path (used only to run asm_tuner) at the driver,
    which runs the original Python where it must; LANDSCAPE_KERNEL_DIRECT=0 leaves it."""
    monkeypatch.setattr(jt_pch, "build_pch", lambda cc, flags, folder, key: _header(folder, key))
    jt = _fake_jt(tmp_path)
    jt.flags.python_path = "/usr/bin/python3.11"
    header = jt_pch.use_kernel_pch(jt)
    assert jt.flags.python_path == str(header.with_name(header.stem + "-tuner"))
    assert 'py="/usr/bin/python3.11"' in Path(jt.flags.python_path).read_text()
    monkeypatch.setenv("LANDSCAPE_KERNEL_DIRECT", "0")
    jt = _fake_jt(tmp_path / "off")
    jt.flags.python_path = "/usr/bin/python3.11"
    assert jt_pch.use_kernel_pch(jt) is not None and jt.flags.python_path == "/usr/bin/python3.11"


def _header(folder: Path, key: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = folder / f"kernels_{key}.h"
    header.write_text("// test\n")
    return header
