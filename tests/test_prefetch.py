"""bayescrt.prefetch: a fit's later imports and first kernel, started on one helper thread.

What is asserted, and why it could fail: in a fresh process (a subprocess: this one has imported everything
already) one call starts one thread, a second call starts none, and when the thread is done PyMC and ArviZ's
statistics are imported and the maximum-likelihood start's kernel is loaded for its types; an import that fails
on the helper is swallowed there (the fit's own import raises it, where it matters).
"""

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_one_thread_loads_pymc_the_first_kernel_and_arviz_statistics():
    out = _run("""
        import sys
        import bayescrt
        from bayescrt import prefetch
        from bayescrt.families import fused
        assert "pymc" not in sys.modules and "arviz_stats" not in sys.modules
        from bayescrt.families.base import _first_kernel
        prefetch.start(_first_kernel)
        prefetch.start(_first_kernel)
        assert len(prefetch._STARTED) == 1
        prefetch._STARTED[0].join()
        print("pymc" in sys.modules, "arviz_stats" in sys.modules, len(fused.linear_predictors.signatures))
    """)
    assert out.split() == ["True", "True", "1"]


def test_a_failing_import_on_the_helper_is_left_to_the_fit():
    out = _run("""
        import builtins, sys
        from bayescrt import prefetch
        real = builtins.__import__
        def refuse(name, *a, **k):
            if name == "pymc":
                raise ImportError("no pymc here")
            return real(name, *a, **k)
        builtins.__import__ = refuse
        prefetch.start()
        prefetch._STARTED[0].join()
        print("pymc" in sys.modules, "arviz_stats" in sys.modules)
    """)
    assert out.split() == ["False", "True"]
