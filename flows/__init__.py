"""psum.flows: Yosys synthesis of generated MAC units into area, delay and energy figures.

:func:`synthesize` / :func:`synthesize_many` (in :mod:`psum.flows.synth`) are re-exported lazily so
that importing the package stays cheap.
"""

__all__ = ["synthesize", "synthesize_many", "SynthResult"]


def __getattr__(name):
    if name in __all__:
        from . import synth

        return getattr(synth, name)
    raise AttributeError(f"module 'psum.flows' has no attribute {name!r}")
