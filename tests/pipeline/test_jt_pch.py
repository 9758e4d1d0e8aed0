"""The precompiled header for Jittor's CPU kernels (pipeline/jt_pch.py): what it holds, when it
is used, that a failed build leaves Jittor's flags alone, and (slow) that kernels compiled with
it are the same machine code as without it."""

from __future__ import annotations

import shlex
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


# Jittor's core: its objects' commands as jittor/compiler.py's compile() writes them
def _object_cmd(src: str, flags: str = '-Wall -std=c++14 -fPIC -I"/j/src" -O2', cc="/usr/bin/g++") -> str:
    return f'"{cc}" "/j/src/{src}" {flags}  -c -o "/cache/obj_files/{Path(src).name}.o"'


def _core_cmds(n: int, **kw) -> list[str]:
    return [_object_cmd(f"ops/op_{i}.cc", **kw) for i in range(n)]


def _fake_build(calls):
    def build(cc, flags, folder, key):
        calls.append((cc, flags, folder, key))
        return folder / f"core_{key}.h"
    return build


def test_the_core_build_gets_the_header_after_each_source(tmp_path):
    calls = []
    cmds = _core_cmds(jt_pch.CORE_MIN_FILES)
    out = jt_pch.with_core_pch(cmds, str(tmp_path), "1.3.11", build=_fake_build(calls))
    assert len(calls) == 1
    cc, flags, folder, key = calls[0]
    assert (cc, flags, folder) == ("/usr/bin/g++", '-Wall -std=c++14 -fPIC -I"/j/src" -O2 ',
                                   tmp_path / jt_pch.PCH_DIR)
    header = folder / f"core_{key}.h"
    for before, after in zip(cmds, out):
        src_end = before.index('.cc"') + 4
        assert after == before[:src_end] + f' -include "{header}"' + before[src_end:]
    # cache_compile (Jittor's command cache) hashes the header as an input of every object
    assert shlex.split(out[0])[2:4] == ["-include", str(header)]


def test_the_core_header_key_follows_compiler_flags_and_version(tmp_path):
    keys = []
    for cc, flags, version in [("/usr/bin/g++", "-O2", "1.3.11"), ("/usr/bin/g++", "-O3", "1.3.11"),
                               ("/usr/bin/g++", "-O2", "1.3.12"), ("/usr/bin/g++-12", "-O2", "1.3.11")]:
        calls = []
        jt_pch.with_core_pch(_core_cmds(jt_pch.CORE_MIN_FILES, flags=flags, cc=cc), str(tmp_path),
                             version, build=_fake_build(calls))
        keys.append(calls[0][3])
    assert len(set(keys)) == 4


def test_small_builds_other_compilers_and_other_commands_are_left_alone(tmp_path):
    calls = []
    small = _core_cmds(jt_pch.CORE_MIN_FILES - 1)  # the oneDNN / MPI ops' builds
    clang = _core_cmds(jt_pch.CORE_MIN_FILES, cc="/usr/bin/clang++")
    nvcc = ['"/usr/local/cuda/bin/nvcc" -x cu "/j/src/a.cu" -c -o "/cache/obj_files/a.cu.o"']
    done = _core_cmds(jt_pch.CORE_MIN_FILES, flags='-include "/x/other.h" -O2')
    for cmds in (small, clang, nvcc, done):
        assert jt_pch.with_core_pch(cmds, str(tmp_path), "1.3.11", build=_fake_build(calls)) == cmds
    assert calls == []
    # two flag sets in one build: only the large group
    mixed = _core_cmds(jt_pch.CORE_MIN_FILES) + [_object_cmd("x.cc", flags="-O2 -DOTHER")]
    out = jt_pch.with_core_pch(mixed, str(tmp_path), "1.3.11", build=_fake_build(calls))
    assert out[-1] == mixed[-1] and all("-include" in c for c in out[:-1]) and len(calls) == 1


def test_a_core_header_that_does_not_build_leaves_the_commands_alone(tmp_path):
    said = []

    def fails(cc, flags, folder, key):
        raise RuntimeError("cc1plus: out of memory")

    cmds = _core_cmds(jt_pch.CORE_MIN_FILES)
    assert jt_pch.with_core_pch(cmds, str(tmp_path), "1.3.11", build=fails, log=said.append) == cmds
    assert len(said) == 1 and "without a precompiled header" in said[0] and "out of memory" in said[0]


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_the_core_header_is_compiled_with_the_objects_flags(tmp_path):
    """A real header build: the .gch is made from the header text with the objects' flags, and an
    object compiled with `-include` of it uses it (GCC's -H marks a used .gch with '!')."""
    inc = tmp_path / "inc"
    inc.mkdir()
    for name in ("common.h", "var.h", "op.h", "var_holder.h", "fused_op.h", "executor.h",
                 "op_compiler.h"):
        (inc / name).write_text("#pragma once\n#include <vector>\n")
    (inc / "pyjt").mkdir()
    (inc / "pyjt" / "py_converter.h").write_text("#pragma once\n")
    (inc / "ops").mkdir()
    (inc / "ops" / "op_register.h").write_text("#pragma once\n")
    py = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
                        capture_output=True, text=True).stdout.strip()
    if not (Path(py) / "Python.h").exists():
        pytest.skip("no Python.h")
    flags = f'-std=c++14 -fPIC -I"{inc}" -I"{py}" -O2'
    header = jt_pch.build_core_pch(shutil.which("g++"), flags, tmp_path / "pch", "k1")
    assert header.read_text() == jt_pch.core_header_text("k1")
    assert Path(str(header) + ".gch").stat().st_size > 0
    src = tmp_path / "obj.cc"
    src.write_text('#include "common.h"\nint f(int x) { std::vector<int> v(x); return v.size(); }\n')
    cmd = jt_pch.with_core_pch([f'"{shutil.which("g++")}" "{src}" {flags} -c -o "{tmp_path / "obj.o"}"'] * jt_pch.CORE_MIN_FILES,
                               str(tmp_path), "1.3.11",
                               build=lambda cc, fl, folder, key: header)[0]
    run = subprocess.run(cmd + " -H", shell=True, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == f"! {header}.gch"
    assert (tmp_path / "obj.o").stat().st_size > 0


def test_build_jobs_at_most_one_per_core():
    gib = 1024**3
    assert jt_pch.compile_jobs(24 * gib, 2) == 2  # this machine: Jittor alone would run 8
    assert jt_pch.compile_jobs(24 * gib, 64) == 8  # Jittor's memory rule still caps it
    assert jt_pch.compile_jobs(200 * gib, 64) == 16
    assert jt_pch.compile_jobs(2 * gib, 8) == 1
    assert jt_pch.compile_jobs(None, 2) == 2 and jt_pch.compile_jobs(None, 16) == 4


class _FakeJittorUtils:
    """What patch_core_build touches of jittor_utils: run_cmds, its pool and its sizing."""

    def __init__(self):
        self.pool_size, self.p, self.ran = 0, None, []
        self.run_cmds = self._run_cmds

    def _run_cmds(self, cmds, cache_path, jittor_path, msg="run_cmds"):
        self.ran.append((list(cmds), self.pool_size, msg))

    @staticmethod
    def get_jittor_version():
        return "1.3.11"

    @staticmethod
    def get_total_mem():
        return 24 * 1024**3

    def Pool(self, n, initializer=None):
        return SimpleNamespace(n=n, __enter__=lambda: None)

    def pool_initializer(self):
        pass

    def pool_cleanup(self):
        pass


def test_the_patch_wraps_jittors_builds_once_and_sizes_the_pool(monkeypatch, tmp_path):
    fake = _FakeJittorUtils()
    monkeypatch.setitem(sys.modules, "jittor_utils", fake)
    monkeypatch.setattr(jt_pch, "build_core_pch", lambda cc, flags, folder, key: folder / "h.h")
    import atexit

    monkeypatch.setattr(atexit, "register", lambda f: None)
    assert jt_pch.patch_core_build(cores=2) and jt_pch.patch_core_build(cores=2)
    fake.run_cmds(_core_cmds(jt_pch.CORE_MIN_FILES), str(tmp_path), "/j", "Compiling jittor_core")
    cmds, pool, msg = fake.ran[0]
    assert len(fake.ran) == 1 and pool == 2 and fake.p.n == 2 and msg == "Compiling jittor_core"
    assert all(f'-include "{tmp_path / jt_pch.PCH_DIR / "h.h"}"' in c for c in cmds)


def test_a_core_that_does_not_compile_with_the_header_is_built_without_it(monkeypatch, tmp_path):
    """Jittor raises a failed compile from run_cmds: the build runs again as Jittor ships it,
    and says why; a failure without the header is Jittor's own error."""
    fake, said = _FakeJittorUtils(), []

    def picky(cmds, cache_path, jittor_path, msg="run_cmds"):
        fake.ran.append(list(cmds))
        if any("-include" in c for c in cmds):
            raise Exception("Compile failed: obj.cc: error: '_POSIX_C_SOURCE' redefined")
        if any("broken" in c for c in cmds):
            raise Exception("Compile failed: broken.cc: error: expected ';'")

    fake.run_cmds = picky
    monkeypatch.setitem(sys.modules, "jittor_utils", fake)
    def build(cc, flags, folder, key):
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"core_{key}.h"

    monkeypatch.setattr(jt_pch, "build_core_pch", build)
    monkeypatch.setattr(jt_pch, "_start_pool", lambda ju, jobs: None)
    assert jt_pch.patch_core_build(said.append, cores=2)
    cmds = _core_cmds(jt_pch.CORE_MIN_FILES)
    fake.run_cmds(cmds, str(tmp_path), "/j", "Compiling jittor_core")
    assert len(fake.ran) == 2 and fake.ran[1] == cmds
    assert len(said) == 1 and "without" in said[0] and "_POSIX_C_SOURCE" in said[0]
    # marked: the next import builds as shipped at once, without trying the header again
    marks = list((tmp_path / jt_pch.PCH_DIR).glob("core_*.h.failed"))
    assert len(marks) == 1 and "_POSIX_C_SOURCE" in marks[0].read_text()
    fake.ran.clear()
    fake.run_cmds(cmds, str(tmp_path), "/j", "Compiling jittor_core")
    assert fake.ran == [cmds] and len(said) == 1
    broken = [_object_cmd("broken.cc")] + cmds
    with pytest.raises(Exception, match="expected ';'"):
        fake.run_cmds(broken, str(tmp_path / "other"), "/j", "Compiling jittor_core")
    # a build the header does not touch runs once
    fake.ran.clear()
    fake.run_cmds(cmds[:3], str(tmp_path), "/j", "Compiling gen_ops_mkl")
    assert fake.ran == [cmds[:3]]


def test_the_patch_is_off_on_request(monkeypatch):
    fake = _FakeJittorUtils()
    monkeypatch.setitem(sys.modules, "jittor_utils", fake)
    monkeypatch.setenv("LANDSCAPE_CORE_PCH", "0")
    assert not jt_pch.patch_core_build(cores=2)
    assert fake.run_cmds == fake._run_cmds


def test_setup_jittor_on_cpu_compiled_the_core_with_its_header():
    """The project's Jittor core (compiled by `make setup` through setup_jittor) used the header."""
    code = ("from pipeline.jt_env import setup_jittor; jt = setup_jittor('cpu');"
            "import pathlib; keys = list((pathlib.Path(jt.flags.cache_path) / 'obj_files').glob('*.o.key'));"
            "print(len(keys), sum('/landscape_pch/core_' in k.read_text().split(chr(10))[0] for k in keys))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    objects, with_header = map(int, out.stdout.split()[-2:])
    assert with_header >= jt_pch.CORE_MIN_FILES and with_header > objects // 2, (objects, with_header)


@pytest.mark.slow
def test_a_core_compiled_with_the_header_computes_what_jittors_own_does():
    """Two fresh Jittor homes: the core as Jittor builds it and as the project does; the small
    graph's outputs are equal."""
    from tools.core_pch_check import check

    r = check()
    assert r["outputs_equal"], r
    assert r["with_header_shipped"] == 0 and r["with_header"] > r["objects_project"] // 2, r
