"""Run a command that gets SIGKILL when psum dies: ``python -S -I _deathsig.py PARENT_PID CMD ARGS...``.

The launcher that :func:`psum._util.simulator_dies_with_me` puts in front of the simulators
cocotb's runner starts (``vvp``, Verilator's model). Why a launcher: the runner starts them with
its own ``subprocess.run``, which psum cannot give a ``preexec_fn``, but it honours cocotb's
``SIM_CMD_PREFIX``. This process sets ``PR_SET_PDEATHSIG`` (:func:`psum._util.die_with_parent`)
and then *execs* the command, which keeps the setting, so a psum killed by SIGKILL takes its
simulator with it instead of leaving it running for the rest of its cycles.

Run with ``-S -I`` (no site, no user paths: a few ms), so it finds psum beside itself.
"""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from psum._util import die_with_parent

    die_with_parent(int(sys.argv[1]))  # SIGKILL now if psum already died
    os.execvp(sys.argv[2], sys.argv[2:])
