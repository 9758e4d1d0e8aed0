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
        use_cuda=cuda))


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
    two fresh kernel folders, without and with the header: every kernel library's .text is
    byte-identical (the oneDNN ones are compiled without it) and the outputs are equal."""
    from tools.kernel_pch_check import check

    r = check("tiny")
    assert r["kernels_without"] == r["kernels_with"] == r["compared"] >= 10, r
    assert r["identical"] == r["compared"] and not r["differ"], r
    assert r["outputs_equal"], r


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
