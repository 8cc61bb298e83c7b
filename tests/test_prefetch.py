"""bayescrt.prefetch: a fit's later imports and first kernel, started on one helper thread, and the first fit's
full garbage collections held off.

What is asserted, and why it could fail: in a fresh process (a subprocess: this one has imported everything
already) one call starts one thread, a second call starts none, and when the thread is done PyMC and ArviZ's
statistics are imported and the maximum-likelihood start's kernel is loaded for its types; an import that fails
on the helper is swallowed there (the fit's own import raises it, where it matters). The first fit's block holds
the oldest generation's collections off and makes one full collection at its end, even when the fit raises; later
blocks change nothing; a collector the caller turned off, or whose thresholds it set inside the block, stays as the
caller left it.
"""

import os
import subprocess
import sys
import textwrap

import pytest


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


def test_the_first_fit_holds_off_full_collections_and_makes_one_at_its_end():
    """In a fresh process the first block holds the oldest generation's collections off (its threshold raised, the
    younger two as they were), restores the thresholds and makes one full collection when it ends, also when it
    raises; a second block, with the helper already started, changes nothing. Each could fail on its own."""
    out = _run("""
        import gc
        from bayescrt import prefetch
        before = gc.get_threshold()
        full = lambda: gc.get_stats()[2]["collections"]
        n = full()
        try:
            with prefetch.first_fit() as held:
                inside = gc.get_threshold()
                raise KeyError("the fit failed")
        except KeyError:
            pass
        print(held, inside[:2] == before[:2], inside[2] == prefetch._HELD > 1000 * before[2], gc.get_threshold() == before,
              full() - n)
        n = full()
        with prefetch.first_fit() as held:
            inside = gc.get_threshold()
        print(held, inside == before, full() - n)
    """)
    lines = out.splitlines()
    assert lines[0].split() == ["True", "True", "True", "True", "1"]
    assert lines[1].split() == ["False", "True", "0"]


def test_a_collector_the_caller_turned_off_or_retuned_is_left_as_the_caller_set_it():
    out = _run("""
        import gc
        from bayescrt import prefetch
        gc.disable()
        with prefetch.first_fit() as held:
            pass
        print(held, gc.isenabled())
    """)
    assert out.split() == ["False", "False"]
    out = _run("""
        import gc
        from bayescrt import prefetch
        with prefetch.first_fit() as held:
            gc.set_threshold(5000, 20, 30)
        print(held, gc.get_threshold())
    """)
    assert out.strip().split(maxsplit=1) == ["True", "(5000, 20, 30)"]
    out = _run("""
        import gc
        from bayescrt import prefetch
        with prefetch.first_fit() as held:
            g0, g1, g2 = gc.get_threshold()
            gc.set_threshold(g0 * 2, g1, g2)  # retuned relative to the held value: only the oldest's comes back
        print(held, gc.get_threshold())
    """)
    assert out.strip().split(maxsplit=1) == ["True", "(1400, 10, 10)"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_process_forked_during_the_hold_gets_the_collector_back():
    """A child forked during the first fit (from any thread) never leaves the fit's block: it gets the thresholds
    back at once, and leaving the block after all does not fail."""
    out = _run("""
        import gc, os, sys
        from bayescrt import prefetch
        with prefetch.first_fit() as held:
            pid = os.fork()
            if pid == 0:
                print("child", gc.get_threshold(), flush=True)
        if pid == 0:
            print("child left", gc.get_threshold(), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent", held, gc.get_threshold())
    """)
    assert "child (700, 10, 10)" in out and "child left (700, 10, 10)" in out and "parent True (700, 10, 10)" in out
