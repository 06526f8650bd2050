"""psum45: the small standard-cell library of the synthesis flow, one table, three views.

Source of the figures
---------------------
Every cell here is the X1 drive of a cell of the **NanGate FreePDK45 Open Cell Library**
(``NangateOpenCellLibrary_typical.lib``, Nangate Inc. 2011, characterised by NGLibraryCharacterizer
v2011.01 at the *typical* corner: TypTyp process, 25 °C, 1.1 V; units ns, fF, nW). Same cell and pin
names, same logic functions.

- ``area`` (µm²): the library's cell areas. They are whole numbers of placement sites
  (0.19 µm x 1.4 µm = 0.266 µm²): INV_X1 2 sites = 0.532, NAND2_X1 3 = 0.798, AND2_X1 4 = 1.064,
  XOR2_X1 6 = 1.596, MUX2_X1 7 = 1.862, DFF_X1 17 = 4.522. AND2_X1 (1.064) and its pin capacitances
  were read from a stored copy of the file (github.com/Max-astro/dp-buffer-insertion,
  ``NangateOpenCellLibrary_typical.lib``); INV_X1 (0.532) from a quoted excerpt of the file.
- ``cap`` (fF): input pin capacitance. Checked against the file or public excerpts of it (six
  decimals): INV_X1 A, BUF_X1 A, NAND2_X1 A1/A2, NOR2_X1 A1, AND2_X1 A1/A2, OR2_X1 A1, XOR2_X1 B.
  The others are the library's figures rounded to 0.01 fF, reproduced without a second check;
  treat them as ±10 %.
- ``delay`` = ``d0 + k * C_load`` (ns, ns/fF): a linear fit to the cell's NLDM ``cell_rise`` /
  ``cell_fall`` tables (mean of rise and fall, worst input pin) at the tables' third input slew
  (17 ps) over loads 0.4..15 fF. For AND2_X1 the fit is to the table read from the stored copy
  (A1 fall 29.6..52.7 ps, rise 29.2..67.4 ps over 0.37..15.1 fF: d0 = 0.030 ns, k = 0.0021 ns/fF).
  The other cells' d0 and k were NOT fitted to tables read for this file: they are estimates of
  the same quantities (single-stage inverting cells ~10-20 ps + 4.5-10 ps/fF, two-stage cells
  ~25-55 ps + ~2.5 ps/fF, DFF clock-to-Q 85 ps, setup 40 ps); treat them as ±20-30 %.
- ``energy`` (fJ): internal energy per output transition, the mean of the ``internal_power``
  ``rise_power`` / ``fall_power`` tables (whose numbers are fJ per transition) at small slew and
  load; for DFF_X1 also ``clk_energy``, the internal energy of one clock cycle (two CK edges) with
  D and Q steady. Only an X4 AOI/OAI21 table was read for this file (rise ~5-9 fJ, fall ~0.5-1.5
  fJ at small slew); the X1 figures here are estimates scaled from such tables, order-of-magnitude
  (±30-50 %); the tables themselves vary by 2x with slew.
- Wire capacitance: the library's default wire-load model ``5K_hvratio_1_1`` (capacitance
  0.1774 fF per unit length, fanout lengths 1.746, 3.939, 6.463, 9.220, 11.912, 14.836, 18.616,
  22.673, 25.484, 27.032 for fanout 1..9 and 11; read from the stored copy).

Views generated from :data:`CELLS` (``python -m psum.flows.cells`` rewrites them; a test checks
they are current): ``psum45.lib`` (Liberty: area, functions, pin capacitances, the flip-flop; what
Yosys' ``dfflibmap`` and ABC read) and ``psum45_cells.v`` (behavioural Verilog models for the
gate-level simulation of the power proxy). Delay and energy figures stay here: the flow's own
timing and power code reads them from this table.

Not modelled: drive strengths other than X1 (no sizing, no buffering of high fanout), half and
full adder cells (ABC maps single-output cells only), scan and reset flops (the generated units
reset synchronously through logic), tie cells (constants stay as constants).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

__all__ = [
    "Cell", "CELLS", "NAND2_AREA", "VDD", "LIB_PATH", "MODELS_PATH", "wire_cap",
    "liberty_text", "models_text", "library_hash",
]

HERE = Path(__file__).resolve().parent
LIB_PATH = HERE / "psum45.lib"
MODELS_PATH = HERE / "psum45_cells.v"

VDD = 1.1  # V, the library's nominal voltage
NAND2_AREA = 0.798  # µm², NAND2_X1: one gate equivalent (GE)

# Wire-load model 5K_hvratio_1_1 of the NanGate library: capacitance per unit length and the
# estimated length for each fanout (fanouts past the table are extrapolated with its last slope).
_WIRE_CAP_PER_LEN = 0.1774
_FANOUT_LENGTH = {1: 1.7460, 2: 3.9394, 3: 6.4626, 4: 9.2201, 5: 11.9123, 6: 14.8358,
                  7: 18.6155, 8: 22.6727, 9: 25.4842, 11: 27.0320}


def wire_cap(fanout: int) -> float:
    """Estimated wire capacitance (fF) of a net with ``fanout`` sink pins (wire-load model)."""
    if fanout <= 0:
        return 0.0
    if fanout in _FANOUT_LENGTH:
        return _WIRE_CAP_PER_LEN * _FANOUT_LENGTH[fanout]
    if fanout == 10:
        return _WIRE_CAP_PER_LEN * (_FANOUT_LENGTH[9] + _FANOUT_LENGTH[11]) / 2
    # Why linear: the model is a table up to 11; beyond it, the library's own "slope" (5.0 length
    # units per extra fanout) extends it.
    return _WIRE_CAP_PER_LEN * (_FANOUT_LENGTH[11] + 5.0 * (fanout - 11))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One library cell.

    Parameters
    ----------
    name : str
        NanGate cell name (``NAND2_X1``).
    area : float
        Cell area, µm².
    inputs : tuple of (str, float)
        Input pins and their capacitance (fF).
    output : str
        Output pin name.
    function : str
        Liberty boolean function of the output (``!(A1 & A2)``); for a flip-flop, its ``next_state``.
    verilog : str
        Verilog expression of the output for the simulation model.
    d0, k : float
        Linear delay model ``d0 + k * C_load`` in ns (``k`` in ns/fF); clock-to-Q for a flip-flop.
    energy : float
        Internal energy per output transition, fJ.
    clk_energy : float
        Flip-flops only: internal energy per clock cycle with steady data, fJ.
    setup : float
        Flip-flops only: setup time of ``D`` before the clock edge, ns.
    transistors : int
        Transistor count of the static CMOS cell (documentation and cross-checks).
    """

    name: str
    area: float
    inputs: tuple
    output: str
    function: str
    verilog: str
    d0: float
    k: float
    energy: float
    clk_energy: float = 0.0
    transistors: int = 0
    setup: float = 0.0

    @property
    def is_ff(self) -> bool:
        """True for the flip-flop (its ``function`` is the next state, clocked by ``CK``)."""
        return self.clk_energy > 0

    @property
    def outputs(self) -> tuple:
        """Every output pin (one: psum45 has no multi-output cells)."""
        return (self.output,)

    @property
    def ge(self) -> float:
        """Area in NAND2 equivalents."""
        return self.area / NAND2_AREA

    def cap(self, pin: str) -> float:
        """Input capacitance of ``pin`` (fF)."""
        return dict(self.inputs)[pin]


CELLS: dict[str, Cell] = {c.name: c for c in (
    Cell("INV_X1", 0.532, (("A", 1.700230),), "ZN", "!A", "~A", 0.010, 0.0045, 0.40, transistors=2),
    Cell("BUF_X1", 0.798, (("A", 0.974659),), "Z", "A", "A", 0.025, 0.0022, 0.90, transistors=4),
    Cell("NAND2_X1", 0.798, (("A1", 1.599032), ("A2", 1.664199)), "ZN", "!(A1 & A2)", "~(A1 & A2)",
         0.012, 0.0050, 0.60, transistors=4),
    Cell("NOR2_X1", 0.798, (("A1", 1.714471), ("A2", 1.65)), "ZN", "!(A1 | A2)", "~(A1 | A2)",
         0.015, 0.0075, 0.70, transistors=4),
    Cell("AND2_X1", 1.064, (("A1", 0.918145), ("A2", 0.974630)), "ZN", "(A1 & A2)", "A1 & A2",
         0.030, 0.0021, 1.00, transistors=6),
    Cell("OR2_X1", 1.064, (("A1", 0.946814), ("A2", 0.98)), "ZN", "(A1 | A2)", "A1 | A2",
         0.040, 0.0022, 1.10, transistors=6),
    Cell("XOR2_X1", 1.596, (("A", 2.23), ("B", 2.411453)), "Z", "(A ^ B)", "A ^ B",
         0.035, 0.0050, 1.80, transistors=10),
    Cell("XNOR2_X1", 1.596, (("A", 2.12), ("B", 2.57)), "ZN", "!(A ^ B)", "~(A ^ B)",
         0.033, 0.0050, 1.80, transistors=10),
    Cell("NAND3_X1", 1.064, (("A1", 1.59), ("A2", 1.62), ("A3", 1.65)), "ZN", "!((A1 & A2) & A3)",
         "~(A1 & A2 & A3)", 0.016, 0.0050, 0.80, transistors=6),
    Cell("NOR3_X1", 1.064, (("A1", 1.62), ("A2", 1.61), ("A3", 1.64)), "ZN", "!((A1 | A2) | A3)",
         "~(A1 | A2 | A3)", 0.020, 0.0100, 0.90, transistors=6),
    Cell("AOI21_X1", 1.064, (("A", 1.63), ("B1", 1.65), ("B2", 1.68)), "ZN", "!(A | (B1 & B2))",
         "~(A | (B1 & B2))", 0.016, 0.0070, 1.00, transistors=6),
    Cell("OAI21_X1", 1.064, (("A", 1.67), ("B1", 1.63), ("B2", 1.56)), "ZN", "!(A & (B1 | B2))",
         "~(A & (B1 | B2))", 0.018, 0.0060, 0.90, transistors=6),
    Cell("AOI22_X1", 1.330, (("A1", 1.69), ("A2", 1.62), ("B1", 1.68), ("B2", 1.62)), "ZN",
         "!((A1 & A2) | (B1 & B2))", "~((A1 & A2) | (B1 & B2))", 0.020, 0.0075, 1.20, transistors=8),
    Cell("OAI22_X1", 1.330, (("A1", 1.59), ("A2", 1.65), ("B1", 1.59), ("B2", 1.64)), "ZN",
         "!((A1 | A2) & (B1 | B2))", "~((A1 | A2) & (B1 | B2))", 0.022, 0.0065, 1.20, transistors=8),
    Cell("MUX2_X1", 1.862, (("A", 0.95), ("B", 0.95), ("S", 1.81)), "Z", "((S & B) | (A & !S))",
         "S ? B : A", 0.055, 0.0025, 2.00, transistors=12),
    Cell("DFF_X1", 4.522, (("D", 1.14), ("CK", 0.95)), "Q", "D", "", 0.085, 0.0025, 3.00,
         clk_energy=4.50, transistors=24, setup=0.040),
)}


def liberty_text() -> str:
    """The Liberty view of :data:`CELLS` (area, functions, pin capacitances, the flip-flop)."""
    out = [
        "/* psum45: X1 cells of the NanGate FreePDK45 Open Cell Library",
        " * (NangateOpenCellLibrary_typical.lib, typical corner, 1.1 V, 25 C).",
        " * Generated by psum.flows.cells (python -m psum.flows.cells); do not edit:",
        " * the figures, their source and their accuracy are documented there. */",
        "library (psum45) {",
        "  technology (cmos);",
        "  delay_model : table_lookup;",
        '  time_unit : "1ns";',
        '  voltage_unit : "1V";',
        '  current_unit : "1mA";',
        '  leakage_power_unit : "1nW";',
        "  capacitive_load_unit (1,ff);",
        f"  nom_voltage : {VDD:.2f};",
        "  nom_temperature : 25.00;",
        "  nom_process : 1.00;",
        "",
    ]
    for cell in CELLS.values():
        out.append(f"  cell ({cell.name}) {{")
        out.append(f"    area : {cell.area:.6f};")
        if cell.is_ff:
            out.append('    ff (IQ, IQN) { next_state : "D"; clocked_on : "CK"; }')
        for pin, cap in cell.inputs:
            clock = " clock : true;" if pin == "CK" else ""
            out.append(f"    pin ({pin}) {{ direction : input; capacitance : {cap:.6f};{clock} }}")
        function = "IQ" if cell.is_ff else cell.function
        out.append(f'    pin ({cell.output}) {{ direction : output; function : "{function}"; }}')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def models_text() -> str:
    """Behavioural Verilog models of :data:`CELLS` for the gate-level simulation (zero delay)."""
    out = [
        "// psum45 cell models for gate-level simulation (zero delay). Generated by psum.flows.cells.",
        "`timescale 1ns/1ps",
    ]
    for cell in CELLS.values():
        pins = [p for p, _ in cell.inputs] + [cell.output]
        out.append(f"module {cell.name}({', '.join(pins)});")
        out.append(f"  input {', '.join(p for p, _ in cell.inputs)};")
        if cell.is_ff:
            # Why an initial value: the generated units come out of reset at +0; starting the
            # gate-level model at 0 instead of X keeps X out of the toggle counts.
            out.append(f"  output reg {cell.output} = 1'b0;")
            out.append(f"  always @(posedge CK) {cell.output} <= D;")
        else:
            out.append(f"  output {cell.output};")
            out.append(f"  assign {cell.output} = {cell.verilog};")
        out.append("endmodule")
    return "\n".join(out) + "\n"


def library_hash() -> str:
    """Hash of every figure of the library (enters the synthesis cache key)."""
    text = liberty_text() + models_text() + repr(sorted(dataclasses.astuple(c) for c in CELLS.values()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write() -> None:
    LIB_PATH.write_text(liberty_text())
    MODELS_PATH.write_text(models_text())


if __name__ == "__main__":  # pragma: no cover
    _write()
    print(f"wrote {LIB_PATH} and {MODELS_PATH}")
