"""Every rank runs NumPy's BLAS single-threaded on one portable kernel (mpi_es.blas)."""
from conftest import run_env, run_python
from mpi_es.blas import PORTABLE_X86_KERNEL, cpu_flags, pin_blas, portable_kernel


def test_the_portable_kernel_is_chosen_only_where_the_cpu_runs_it():
    assert portable_kernel("x86_64", {"avx2", "fma", "sse4_2"}) == PORTABLE_X86_KERNEL
    assert portable_kernel("x86_64", {"sse4_2", "avx"}) is None       # older x86: OpenBLAS picks
    assert portable_kernel("aarch64", {"asimd"}) is None


def test_a_users_own_choice_wins():
    environ = {"OPENBLAS_CORETYPE": "Zen", "OMP_NUM_THREADS": "4"}
    pin_blas(environ)
    assert environ["OPENBLAS_CORETYPE"] == "Zen" and environ["OMP_NUM_THREADS"] == "4"
    assert environ["OPENBLAS_NUM_THREADS"] == "1"


def test_numpy_runs_on_the_pinned_kernel_when_mpi_es_is_imported_first():
    import platform
    expected = portable_kernel(platform.machine(), cpu_flags()) or ""
    env = run_env()
    env.pop("OPENBLAS_CORETYPE", None)
    code = "import mpi_es.cli; from mpi_es.blas import blas_kernel; print(blas_kernel())"
    proc = run_python(code, env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out != "unknown"
    if expected:
        assert out.lower() == expected.lower()


def test_the_test_process_itself_runs_on_the_pinned_kernel():
    """conftest pins it too, so what a test computes in-process (a checkpoint's BLAS kernel
    against this process's) is what the ranks compute."""
    import platform
    from mpi_es.blas import blas_kernel
    expected = portable_kernel(platform.machine(), cpu_flags())
    if expected:
        assert blas_kernel().lower() == expected.lower()
