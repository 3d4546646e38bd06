"""Shared helpers of the benchmark scripts: options, data, machine description, output."""

import argparse
import datetime
import json
import math
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


# Where a run writes by default: the gitignored runs/ folder, so that a
# plain command never overwrites the committed results in benchmarks/results/.
DEFAULT_OUT_DIR = os.path.join("runs", "benchmarks")

# MNIST's training images: the most rows a script can take from them.
MNIST_TRAIN_ROWS = 60000


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except ``None`` (off, or set by another
    option), the ``False`` of switches and where the help already says it."""

    def _get_help_string(self, action):
        if (action.default is None or isinstance(action.default, bool)
                or "(default" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)


def new_parser(doc):
    """An `argparse.ArgumentParser` described by the first line of ``doc``
    (a script's module docstring) that shows the options' defaults."""
    return argparse.ArgumentParser(description=doc.strip().split("\n")[0],
                                   formatter_class=HelpFormatter)


def layer_sizes_text(text):
    """Hidden layer sizes such as ``500,500,2000``, checked like
    `keras_dbn.argtypes.layer_sizes` and kept as that text."""
    from keras_dbn.argtypes import layer_sizes

    return ",".join(str(size) for size in layer_sizes(text))


def add_io_arguments(parser, name):
    """Adds ``--manual-dir``, ``--data-dir`` and ``--out`` (runs/benchmarks/<name>.json)."""
    parser.add_argument("--manual-dir", default=DEFAULT_MANUAL_DIR,
                        help="folder of the MNIST source files (offline TFDS preparation)")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir (TFDS default if unset)")
    parser.add_argument("--out", default=os.path.join(DEFAULT_OUT_DIR, f"{name}.json"),
                        help="where to write the results as JSON (the committed reference "
                             "results are in benchmarks/results/)")


def check_output_path(parser, path, option="--out"):
    """Exits through ``parser.error`` if ``path`` cannot be written.

    Checked right after parsing, as results are written only at the end of
    a run: ``path`` must not be a folder, and its parent must be a folder
    or creatable as one (its nearest existing ancestor a writable folder).
    Nothing is created. An empty ``path`` (nothing to write) passes.
    """
    if not path:
        return
    target = pathlib.Path(path).expanduser().absolute()
    if target.is_dir():
        parser.error(f"{option} {path!r} is a folder; name the file to write")
    if target.exists() and not os.access(target, os.W_OK):
        parser.error(f"{option} {path!r} is not writable")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        parser.error(f"{option} {path!r} cannot be written: {str(ancestor)!r} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        parser.error(f"{option} {path!r} cannot be written: no write access to {str(ancestor)!r}")


def check_input_file(parser, path, option):
    """Exits through ``parser.error`` unless ``path`` (if given) is a file."""
    if path and not os.path.isfile(path):
        parser.error(f"{option} {path!r}: no such file")


def run_script(parse_args, run_benchmark, argv=None):
    """A script's ``main``: parses (and checks) ``argv``, then runs the
    benchmark without TensorFlow's retracing warnings about Keras' own
    functions; returns what ``run_benchmark(args)`` returns."""
    args = parse_args(argv)
    with quiet_retracing():
        return run_benchmark(args)


def quiet_retracing():
    """`keras_dbn.tf_logging.quiet_keras_retracing`, imported when called:
    drops TensorFlow's retracing warnings about Keras' own functions."""
    from keras_dbn.tf_logging import quiet_keras_retracing

    return quiet_keras_retracing()


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


def announce_machine():
    """`machine()`, printed first, so that a log shows what it was run on."""
    info = machine()
    print(f"machine: {info}", flush=True)
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


def json_safe(value):
    """``value`` with every infinite or NaN float as ``None`` (JSON has
    neither: an open end of an interval, a time not measured, become null)
    and tuples as lists."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, payload):
    """Writes ``payload`` to ``path`` as strict JSON (`json_safe`); nothing
    for an empty ``path``."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    text = json.dumps(json_safe(payload), indent=2, allow_nan=False)
    with open(path, "w") as f:
        f.write(text)
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
