"""Spec tables shared by several test modules (a test module must not import another one).

``MATRIX``: issue 3's float units, one edge class per id; ``CORNERS``: spec corners outside it.
Used by ``test_hw_float_amaranth.py`` (Amaranth simulator), ``test_hw_float_cocotb.py`` (Icarus)
and ``test_flows_matrix.py`` (synthesis).
"""

# The spec matrix of issue 3 (float accumulators), one edge class per id.
MATRIX = {
    "fp16_fused_ieee": "a=fp16,b=fp16,acc=fp16",
    "bf16_fp32": "a=bf16,b=bf16,acc=fp32",
    "bf16_unfused_prod_bf16_e6m9": "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
    "e4m3_e5m10": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m10",
    "e5m2_e6m7": "a=fp8_e5m2,b=fp8_e5m2,acc=e6m7",
    "e4m3_x_e5m2_e4m6": "a=fp8_e4m3,b=fp8_e5m2,acc=e4m6",
    "e2m1_e4m3fn": "a=fp4_e2m1,b=fp4_e2m1,acc=e4m3fn",
    "e2m1_e4m3fn_sat": "a=fp4_e2m1,b=fp4_e2m1,acc=e4m3fn,overflow=sat",
    "int8_e6m9": "a=int8,b=int8,acc=e6m9",
    "int8_x_e4m3_fp16": "a=int8,b=fp8_e4m3,acc=fp16",
    "fp16_rtz": "a=fp16,b=fp16,acc=fp16,round=rtz",
    "fp16_rdn": "a=fp16,b=fp16,acc=fp16,round=rdn",
    "e5m2_e6m7_rup": "a=fp8_e5m2,b=fp8_e5m2,acc=e6m7,round=rup",
    "e4m3_e5m6_rna": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round=rna",
    "fp16_unfused_rod": "a=fp16,b=fp16,acc=fp16,prod=fp16,fused=no,round=rod",
    "e4m3_ftz": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m10_ftz",
    "fnuz_unfused": "a=fp8_e4m3fnuz,b=fp8_e5m2fnuz,acc=e5m7fnuz,prod=e5m2fnuz,fused=no,round=rdn",
    "fp16_sr6": "a=fp16,b=fp16,acc=fp16,round=sr,srbits=6",
}


# Spec corners outside the matrix: fn/fnuz product formats that overflow to NaN, fin
# accumulators with integer operands, zero-mantissa formats, non-default biases, wide products,
# stochastic rounding with a flush-to-zero accumulator and with an unfused product, windows and
# packed codes wider than 64 bits (int32 x int32, fp64).
CORNERS = {
    "e5m2_into_e4m3fn_inf_to_nan": "a=fp8_e5m2,b=fp8_e5m2,acc=fp8_e4m3",
    "e5m2_into_e4m3fn_inf_sat": "a=fp8_e5m2,b=fp8_e5m2,acc=fp8_e4m3,overflow=sat",
    "prod_fn_overflow_nan": "a=fp8_e5m2,b=fp8_e5m2,acc=e4m3fn,prod=e4m3fn,fused=no",
    "uint4_x_int4_fin": "a=uint4,b=int4,acc=e3m2fin",
    "m0_fin_rod": "a=e2m0fin,b=e2m0fin,acc=e4m1,round=rod",
    "biased": "a=e4m3_b3,b=e3m4_b10,acc=e5m6_b20,round=rup",
    "prod_wider_than_acc": "a=fp16,b=fp16,acc=bf16,prod=fp32,fused=no",
    "prod_ftz_rtz": "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,prod=e5m2_ftz,fused=no,round=rtz",
    "sr_ftz": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4_ftz,round=sr,srbits=3",
    "sr_unfused": "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no,round=sr,srbits=13",
    "ieee_into_fnuz_rdn": "a=fp8_e5m2,b=fp8_e5m2,acc=fp8_e5m2fnuz,round=rdn",
    "int16_x_uint8_overflow_rdn": "a=int16,b=uint8,acc=fp16,round=rdn",
    "int32_x_int32_window_over_64_bits": "a=int32,b=int32,acc=fp32,round=rdn",
    "int8_unfused_prod_e5m4": "a=int8,b=int8,acc=e6m9,prod=e5m4,fused=no,round=rup",
    "m0_sr_e8m0fin": "a=fp6_e3m2,b=int4,acc=e8m0fin,round=sr,srbits=2",
    "fp64_fused": "a=fp64,b=fp64,acc=fp64",
}
