"""psum.reports: the area-vs-accuracy trade-off report (``psum report``)."""

__all__ = ["build_report", "ReportConfig"]


def __getattr__(name):
    if name in __all__:
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module 'psum.reports' has no attribute {name!r}")
