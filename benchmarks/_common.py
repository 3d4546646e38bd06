"""Shared helpers of the benchmark scripts: data, machine description, output."""

import datetime
import json
import os
import pathlib
import platform
import statistics

# The MNIST source files beside the repository (as the tests use them), or
# the folder named by KERAS_DBN_MNIST_DIR.
DEFAULT_MANUAL_DIR = os.environ.get(
    "KERAS_DBN_MNIST_DIR",
    str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"),
)


def add_io_arguments(parser, name):
    """Adds ``--manual-dir``, ``--data-dir`` and ``--out`` (results/<name>.json)."""
    parser.add_argument("--manual-dir", default=DEFAULT_MANUAL_DIR,
                        help="folder of the MNIST source files (offline TFDS preparation)")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir (TFDS default if unset)")
    parser.add_argument("--out", default=f"benchmarks/results/{name}.json",
                        help="where to write the results as JSON")


def load_mnist(split, binarize=None, manual_dir=DEFAULT_MANUAL_DIR, data_dir=None, limit=None):
    """MNIST through keras_dbn.datasets (offline from ``manual_dir``)."""
    from keras_dbn.datasets import load_numpy

    return load_numpy(
        "mnist", split, manual_dir=manual_dir, data_dir=data_dir, binarize=binarize, seed=0,
        limit=limit,
    )


def load_train_test(args, limit=None):
    """``(x_train, y_train, x_test, y_test)`` of MNIST's grey levels, from
    the ``--manual-dir`` and ``--data-dir`` of `add_io_arguments`; ``limit``
    keeps the first training images only."""
    x, y = load_mnist("train", manual_dir=args.manual_dir, data_dir=args.data_dir, limit=limit)
    x_test, y_test = load_mnist("test", manual_dir=args.manual_dir, data_dir=args.data_dir)
    return x, y, x_test, y_test


def machine():
    """Cores, CPU model, memory, load, package versions and date, as a dict."""
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    info["nproc"] = os.cpu_count()
    try:
        info["sched_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        info["cpu_model"] = models[0] if models else platform.processor()
        # Virtual machines often report a bare "AMD EPYC": the family and
        # model numbers tell CPU generations apart (their GEMM rates differ
        # by ~2x here, which moves every ratio against the GEMMs).
        for key, label in (("cpu_family", "cpu family"), ("cpu_model_number", "model")):
            value = next((line.split(":", 1)[1].strip() for line in lines
                          if line.split(":", 1)[0].strip() == label), None)
            if value is not None:
                info[key] = value
        flags = next((line for line in lines if line.startswith("flags")), "")
        info["cpu_flags"] = sorted(
            flag for flag in flags.split(":", 1)[-1].split()
            if flag in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma"}
        )
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            total_kib = int(f.readline().split()[1])
        info["memory_gib"] = round(total_kib / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    info["python"] = platform.python_version()
    for name in ("tensorflow", "keras", "sklearn", "numpy", "tensorflow_datasets"):
        try:
            module = __import__(name)
            info[name] = module.__version__
        except ImportError:
            info[name] = None
    info["tensorflow_onednn_opts"] = _onednn_opts()
    return info


def _onednn_opts():
    """Whether TensorFlow runs its oneDNN ops (fused GEMM + bias + activation).

    TensorFlow turns them on by default only on CPUs with AVX-512 neural
    network instructions (``TF_ENABLE_ONEDNN_OPTS`` overrides); without
    them a sigmoid is not fused into its GEMM and a bfloat16 GEMM runs in
    TensorFlow's own kernel. None when this TensorFlow cannot say.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def load_now():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


def write_json(path, payload):
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


def print_table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))


def dropout_classifier(hidden, seed=0):
    """A randomly initialised 784-input classifier shaped as
    ``DBN.to_classifier(10, dropout=0.2)``: a sigmoid Dense layer per entry
    of ``hidden``, each followed by dropout 0.2, then a 10-way softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((784,))])
    for units in hidden:
        model.add(keras.layers.Dense(units, activation="sigmoid"))
        model.add(keras.layers.Dropout(0.2))
    model.add(keras.layers.Dense(10, activation="softmax"))
    return model
