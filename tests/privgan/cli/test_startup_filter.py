"""The console entry points' filter of TensorFlow's start-up lines: notices go, real warnings and errors stay."""

import privgan_commands

STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796163202.649172   18519 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1796163202.649505   18519 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796163202.811974   18519 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1796163336.366874   19636 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
E1201 22:15:38.077806   19636 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been registered
"""
REAL = """\
W1201 22:15:38.077806   19636 allocator.cc:124] Allocation of 400000000 exceeds 10% of free system memory.
E1201 22:15:38.077806   19636 op_kernel.cc:1830] OP_REQUIRES failed at xla_ops.cc:577 : INVALID_ARGUMENT
To enable the following instructions: (a line that follows a kept line is kept)
Traceback (most recent call last):
ImportError: something real
"""


def test_startup_notices_are_dropped():
    assert privgan_commands.filter_startup_lines(STARTUP) == ""


def test_real_warnings_errors_and_tracebacks_are_kept_in_order():
    assert privgan_commands.filter_startup_lines(STARTUP + REAL + STARTUP) == REAL
