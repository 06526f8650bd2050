"""psum against published results: one module per study (issue 16).

=======================  ==========================================  =================================
module                   published result                            command
=======================  ==========================================  =================================
:mod:`.deepseek`         DeepSeek-V3 (2024) section 3.3.2: FP8 GEMM  ``psum study deepseek``
                         keeps ~14 bits, ~2 % error at K = 4096,
                         fixed by promotion every 128
:mod:`.accumulation`     Sakr et al., ICLR 2019: variance            ``psum study accumulation-theory``
                         retention ratio -> minimum mantissa
:mod:`.a2q`              Colbert et al., ICCV 2023 (A2Q): data-free  ``psum study a2q``
                         l1-norm bound on the integer accumulator
=======================  ==========================================  =================================

Each study writes, under its folder (``./study-<name>/``, or ``$PSUM_RESULTS_DIR``, or ``out_dir``):
``<name>.md`` (the report section), ``<name>.json`` and ``<name>.csv`` (every number behind every
plot), PNG + SVG plots, and where it runs long a JSON Lines file of finished rows it resumes from.
``psum report`` links the sections it finds beside its own folder.
"""

__all__ = ["run_deepseek", "run_accumulation_theory", "run_a2q", "STUDIES", "study_dir", "section_path"]

from .common import STUDIES, section_path, study_dir  # noqa: E402  (light: no torch)


def __getattr__(name):  # the studies themselves load torch: import them on first use
    if name == "run_deepseek":
        from .deepseek import run_deepseek
        return run_deepseek
    if name == "run_accumulation_theory":
        from .accumulation import run_accumulation_theory
        return run_accumulation_theory
    if name == "run_a2q":
        from .a2q import run_a2q
        return run_a2q
    raise AttributeError(f"module 'psum.studies' has no attribute {name!r}")
