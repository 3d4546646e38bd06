"""Whether this machine computes in bfloat16 natively.

A ``mixed_bfloat16`` policy pays off only where the bfloat16 GEMMs are
faster than float32 ones. oneDNN, TensorFlow's CPU library, runs them with
the CPU's bfloat16 instructions (x86 ``avx512_bf16`` or ``amx_bf16``, Arm
``bf16``); on a CPU without them bfloat16 is computed through float32
(on a CPU without AVX-512, in TensorFlow's own kernels: its oneDNN ops are
off there), and the policy's casts make training slower than float32:
0.79-0.81x for ``RBM.fit`` at 784x500, batch 1000, and 0.72x at batch
100, on a 2-core AMD EPYC (Zen 3) without AVX-512, against 1.5x at batch
1000 on a 2-core EPYC with AVX512-BF16 (``benchmarks/RESULTS.md``,
twentieth and twenty-first sessions).
"""

import functools

from keras_dbn import user_warnings

#: CPU flags (``/proc/cpuinfo``) of bfloat16 arithmetic that oneDNN uses.
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

_warned = False


def cpu_flags(cpuinfo=None):
    r"""The feature flags of the CPU, as Linux lists them in ``/proc/cpuinfo``.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo``; read from the file if None.

    Returns:
        A frozenset of flag names (x86 ``flags`` or Arm ``Features``), or
        None where the file is missing or lists none (not Linux).

    Example:

        >>> sorted(cpu_flags("processor : 0\nflags : fpu avx2 avx512_bf16\n"))
        ['avx2', 'avx512_bf16', 'fpu']
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def native_bfloat16(cpuinfo=None):
    """Whether the CPU has bfloat16 arithmetic; None where that is unknown.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo``; read from the file if None.

    Returns:
        True or False from the CPU's flags (`BFLOAT16_CPU_FLAGS`), or None
        where they cannot be read.

    Example:

        >>> if native_bfloat16() is False:
        ...     rbm = keras_dbn.RBM(500, dtype="float32")  # bfloat16 would be slower
    """
    flags = _this_cpus_flags() if cpuinfo is None else cpu_flags(cpuinfo)
    return None if flags is None else bool(flags & BFLOAT16_CPU_FLAGS)


@functools.lru_cache(maxsize=None)
def _this_cpus_flags():
    """`cpu_flags` of this machine, read once (`RBM.fit` asks on every call)."""
    return cpu_flags()


def _has_accelerator():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() != "cpu"
    return False


def warn_if_emulated(dtype_policy):
    """Warns, once per process, when a bfloat16 policy will run emulated.

    Only where the computation runs on the CPU (no GPU or TPU is visible)
    and the CPU's flags show no bfloat16 arithmetic.

    Args:
        dtype_policy: a `keras.DTypePolicy` (e.g. a model's ``dtype_policy``).

    Returns:
        True when it warned (in this call).
    """
    global _warned
    if _warned or dtype_policy.compute_dtype != "bfloat16":
        return False
    if native_bfloat16() is not False or _has_accelerator():
        return False
    _warned = True
    user_warnings.warn(
        f"The {dtype_policy.name!r} policy computes in bfloat16, but this CPU has no "
        "bfloat16 instructions (avx512_bf16, amx_bf16 or bf16): TensorFlow emulates "
        "them, and training is usually slower than in float32 (0.7-0.8x for an RBM "
        "at 784x500 on such a machine). Use dtype='float32' here."
    )
    return True
