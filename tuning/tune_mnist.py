"""Tune a DBN classifier on MNIST (or Fashion-MNIST) with keras-tuner.

The whole pipeline is searched at once: number and sizes of the layers, CD-k
or PCD, pretraining learning rate and epochs, fine-tuning learning rate,
dropout and batch size (see ``keras_dbn.tuning.DBNHyperModel``). At the end the
script prints keras-tuner's results summary and a compact table of the best
trials, and writes to ``--output`` (default ``<directory>/<project>/best``):

* ``best_model.keras`` -- the best fine-tuned classifier (plain Keras layers);
* ``saved_model/1/`` -- the same model as a SavedModel for TF Serving;
* ``results.json`` -- best hyperparameters, validation and test accuracy.

A small budget (a couple of minutes on a laptop CPU)::

    python tuning/tune_mnist.py --tuner random --max-trials 3 --max-epochs 2 \\
        --train-limit 5000 --units 64,128 --max-layers 2 --max-pretrain-epochs 1

Offline, from the four original MNIST files::

    python tuning/tune_mnist.py --manual-dir data/mnist ...

Few labels (pretrain on every training image, fine-tune on 1000 labels)::

    python tuning/tune_mnist.py --labels 1000 --tuner hyperband --max-epochs 20

Interrupt and resume: press Ctrl-C at any time. Finished trials are recorded
in ``--directory``/``--project-name``; run the same command again (without
``--overwrite``) and the search resumes: finished trials are kept, the trial
that was interrupted runs again, and pretrained RBMs are read back from the
project's ``pretrain_cache`` folder. Raise ``--max-trials`` to extend a
finished search; pass ``--overwrite`` to start afresh.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from keras_dbn.cli import run_reporting_errors  # noqa: E402
from keras_dbn.tuning import add_search_arguments, run_search  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Hyperparameter search over DBN pretraining and fine-tuning with keras-tuner.",
        epilog="Ctrl-C interrupts; rerunning the same command resumes the search.",
    )
    args = add_search_arguments(parser).parse_args(argv)
    # Bad values and I/O errors as one line, not a traceback; Ctrl-C too.
    return run_reporting_errors(
        lambda: run_search(args), parser.prog,
        ": finished trials are saved; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
